"""Structure: the API client's settings are declared once, in `ClientConfig`, and the window geometry of
annotate and condense once, in `WindowGeometry`. Reads source with `ast` (no imports of the modules): seconds."""

from __future__ import annotations

import ast
import dataclasses
import functools
from pathlib import Path

from paralm.api.chat_types import ClientConfig

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("paralm", "callbacks")
# every ClientConfig field but `model`, a word many configs use for something else (the Speech-LLM)
CLIENT_FIELDS = {f.name for f in dataclasses.fields(ClientConfig)} - {"model"}


def dataclass_fields(tree: ast.Module):
    """(class name, field name) of every annotated field of every @dataclass class in `tree`."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        if not any("dataclass" in ast.unparse(d) for d in node.decorator_list):
            continue
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                yield node.name, stmt.target.id


@functools.cache
def all_declarations() -> tuple[tuple[str, str, str], ...]:
    """(path, class, field) of every dataclass field in the packages (parsed once per session)."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for cls, name in dataclass_fields(ast.parse(path.read_text(), str(path))):
                found.append((str(path.relative_to(ROOT)), cls, name))
    return tuple(found)


def declarations(names: set[str]) -> list[tuple[str, str, str]]:
    """(path, class, field) of every dataclass field in the packages whose name is in `names`."""
    return [d for d in all_declarations() if d[2] in names]


def test_client_fields_are_declared_only_in_client_config():
    assert {"concurrency", "timeout_s", "max_retries", "retry_after_cap_s", "budget_usd"} <= CLIENT_FIELDS
    outside = [f"{path}:{cls}.{name}" for path, cls, name in declarations(CLIENT_FIELDS) if cls != "ClientConfig"]
    assert outside == [], f"client settings restated outside ClientConfig (nest a `client: ClientConfig`): {outside}"


def test_client_config_itself_declares_every_client_field_once():
    inside = [name for _, cls, name in declarations(CLIENT_FIELDS) if cls == "ClientConfig"]
    assert sorted(inside) == sorted(CLIENT_FIELDS)


def class_bases(path: Path, name: str) -> list[str]:
    """Base class names of class `name` in `path` (read with ast: annotate.py imports torch, which is slow)."""
    tree = ast.parse(path.read_text(), str(path))
    return next([ast.unparse(b) for b in n.bases] for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == name)


def test_window_geometry_is_declared_once_for_annotate_and_condense():
    from paralm.creation.condense_core import CondenseConfig, WindowGeometry

    assert class_bases(ROOT / "paralm/creation/annotate.py", "WindowPlan") == ["WindowGeometry"]
    assert issubclass(CondenseConfig, WindowGeometry)
    for name in ("window", "context"):  # inherited, not redeclared: the very same field object
        assert CondenseConfig.__dataclass_fields__[name] is WindowGeometry.__dataclass_fields__[name]
    assert [(cls, name) for _, cls, name in declarations({"window", "context"})] == [
        ("WindowGeometry", "window"), ("WindowGeometry", "context")]
    assert (CondenseConfig().window, CondenseConfig().context) == (2.0, 1.0)
