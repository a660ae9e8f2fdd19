"""paralm: contextual paralinguistic training and evaluation for Speech-LLMs."""

import importlib as _importlib

from paralm import moved_modules as _moved_modules

__version__ = "0.1.0"

# Old module paths (paralm.checkpointing, paralm.secrets, paralm.runs.ablate_config, ...) resolve to the
# moved modules themselves: the table and the import hook are in paralm/moved_modules.py.
_moved_modules.install()


def __getattr__(name):
    """`paralm.secrets` and other moved children of paralm, reached as attributes without an import."""
    if f"{__name__}.{name}" in _moved_modules.MOVED:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
