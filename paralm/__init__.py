"""paralm: contextual paralinguistic training and evaluation for Speech-LLMs."""

import sys as _sys

from paralm import secret_guard as _secret_guard

__version__ = "0.1.0"

# `paralm.secrets` is the old name of paralm/secret_guard.py. No file may be called secrets.py: run as a
# script (`fabric run paralm/launch.py`), its folder would shadow the standard library's `secrets`.
_sys.modules.setdefault(__name__ + ".secrets", _secret_guard)
secrets = _secret_guard
