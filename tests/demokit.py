"""The embedded demo corpus' folder and its build scripts (data/demo/*.py) as importable modules.

data/demo/ is not a package: its scripts import their neighbours (qa.py imports presets.py and
sentences.py) by bare name, so a test loads one by path with the folder briefly on the import path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


def demo_module(name: str) -> ModuleType:
    """data/demo/<name>.py, imported by path as `demo_<name>`."""
    sys.path.insert(0, str(DEMO))
    try:
        spec = importlib.util.spec_from_file_location(f"demo_{name}", DEMO / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(DEMO))
