"""Secrets come from the environment only.

A config value or flag that looks like an API key (an option named *api_key*, *token*, *secret* or
*password* with a value, or any value shaped like a provider key) is refused before anything is logged,
so keys never reach W&B config, hparams, checkpoints or logs.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

SECRET_NAME = re.compile(r"(^|_)(api[_-]?key|secret|password|passwd|access_token|auth_token|hf_token|bearer)$|^token$",
                         re.I)
PROVIDER_KEY = r"sk-[A-Za-z0-9_\-]{16,}|hf_[A-Za-z0-9]{20,}"  # the key shapes both patterns below look for
KEY_SHAPE = re.compile(rf"^({PROVIDER_KEY}|Bearer\s+\S{{16,}})$")
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
KEY_IN_TEXT = re.compile(rf"({PROVIDER_KEY}|Bearer\s+[A-Za-z0-9_\-\.=]{{16,}})")
MASK = "***"


def mask_secrets(text: str) -> str:
    """`text` with every key-shaped substring replaced by `***` (used on every message a command prints)."""
    if not isinstance(text, str) or not text:
        return text
    return KEY_IN_TEXT.sub(lambda m: ("Bearer " if m.group(0).startswith("Bearer") else "") + MASK, text)


def secret_values(config: Any) -> list[str]:
    """The values at the paths `find_secrets` reports (to mask them in text even when not key-shaped)."""
    found = set(find_secrets(config))
    return sorted({str(v) for path, v in _walk(config) if path in found and isinstance(v, str) and v.strip()},
                  key=len, reverse=True)


def mask_values(text: str, values: Iterable[str] = ()) -> str:
    """`mask_secrets(text)`, and every literal occurrence of `values` replaced by `***` too."""
    for value in values:
        if value and len(value) >= 4:  # a one-letter "secret" would mask every such letter in the text
            text = text.replace(value, MASK)
    return mask_secrets(text)


class MaskingStream:
    """A text stream that masks secrets line by line on their way to the wrapped stream.

    Why line by line: a parser may write one message in several `write` calls, and a key split between
    two of them would pass a per-call mask. Text is held until a newline or `flush()` (progress bars flush
    after each update). `tail` keeps the last lines written, masked, for a closing one-line summary.
    """

    def __init__(self, stream, values: Iterable[str] = (), keep: int = 4000) -> None:
        self._stream = stream
        self._values = list(values)
        self._pending = ""
        self._keep = keep
        self.tail = ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            done, self._pending = self._pending.rsplit("\n", 1)
            self._emit(done + "\n")
        return len(text)

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, ""
            self._emit(pending)
        self._stream.flush()

    def _emit(self, text: str) -> None:
        masked = mask_values(text, self._values)
        self.tail = (self.tail + masked)[-self._keep:]
        self._stream.write(masked)

    def __getattr__(self, name: str):  # isatty, fileno, encoding, ... of the real stream
        return getattr(self._stream, name)


@contextlib.contextmanager
def masked_stdio(values: Iterable[str] = ()):
    """Route sys.stdout and sys.stderr through MaskingStream for the block; yields the stderr stream."""
    old_out, old_err = sys.stdout, sys.stderr
    out, err = MaskingStream(old_out, values), MaskingStream(old_err, values)
    sys.stdout, sys.stderr = out, err
    try:
        yield err
    finally:
        for stream in (out, err):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        sys.stdout, sys.stderr = old_out, old_err
