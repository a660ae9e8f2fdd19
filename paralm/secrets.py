"""Secrets come from the environment only.

A config value or flag that looks like an API key (an option named *api_key*, *token*, *secret* or
*password* with a value, or any value shaped like a provider key) is refused before anything is logged,
so keys never reach W&B config, hparams, checkpoints or logs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SECRET_NAME = re.compile(r"(^|_)(api[_-]?key|secret|password|passwd|access_token|auth_token|hf_token|bearer)$|^token$",
                         re.I)
KEY_SHAPE = re.compile(r"^(sk-[A-Za-z0-9_\-]{16,}|hf_[A-Za-z0-9]{20,}|Bearer\s+\S{16,})$")
ALLOWED_NAME_SUFFIX = ("_env",)  # e.g. api_key_env: the NAME of an environment variable, not a key


class SecretInConfigError(ValueError):
    """A secret was given in a config file or flag."""


def _walk(obj: Any, path: str = ""):
    if isinstance(obj, Mapping) or hasattr(obj, "items"):
        try:
            items = list(obj.items())
        except TypeError:
            items = []
        for k, v in items:
            yield from _walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, obj


def find_secrets(config: Any) -> list[str]:
    """Dotted paths of config entries that carry a secret value."""
    found = []
    for path, value in _walk(config):
        if not isinstance(value, str) or not value:
            continue
        leaf = path.rsplit(".", 1)[-1]
        named = SECRET_NAME.search(leaf) and not leaf.endswith(ALLOWED_NAME_SUFFIX)
        if named or KEY_SHAPE.match(value.strip()):
            found.append(path)
    return found


def refuse_secrets_in_args(config: Any) -> None:
    bad = find_secrets(config)
    if bad:
        raise SecretInConfigError(
            f"refusing secret value(s) in config/flags at {', '.join(bad)}: put API keys in an environment "
            "variable and name the variable (e.g. api_key_env: OPENAI_API_KEY)")


# Anything shaped like a provider key inside free text (a parse error quoting a value, a server echo).
KEY_IN_TEXT = re.compile(r"(sk-[A-Za-z0-9_\-]{16,}|hf_[A-Za-z0-9]{20,}|Bearer\s+[A-Za-z0-9_\-\.=]{16,})")
MASK = "***"


def mask_secrets(text: str) -> str:
    """`text` with every key-shaped substring replaced by `***` (used on every message a command prints)."""
    if not isinstance(text, str) or not text:
        return text
    return KEY_IN_TEXT.sub(lambda m: ("Bearer " if m.group(0).startswith("Bearer") else "") + MASK, text)
