"""Tests of paralm/cli.py and the Lightning commands: what a user types: fit/validate/predict runs, run folders, one-line errors, exit codes, options files, W&B mode.

Shared settings (offline, one torch thread, the process guard) come from tests/conftest.py; the
helper kits in tests/ are importable from here.
"""
