"""`python -m paralm.runs.sweep` runs the sweep command, as it did when the command was paralm/runs/sweep.py."""

import sys

from paralm.runs.sweep.command import main

sys.exit(main())
