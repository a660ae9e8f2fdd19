"""JSON-lines files that survive crashes: atomic whole-file writes and fsync'd appends.

Predictions, judged rows and partial judge results are all JSONL. A process killed mid-run may leave
a half-written last line in an append log; readers of such logs can ask to drop it instead of failing,
while every other malformed line is an error that names the file and line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from paralm.atomic_files import atomic_open, atomic_write_text


def read_jsonl(path: str | Path, allow_truncated_tail: bool = False) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line.

    `allow_truncated_tail` skips an unparseable *last* line that has no trailing newline (the mark of
    a writer killed mid-line); any other bad line raises ValueError naming file and line.
    """
    path = Path(path)
    with path.open("r", encoding="utf-8") as f:
        lines = f.readlines()
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            is_tail = i == len(lines) and not line.endswith("\n")
            if allow_truncated_tail and is_tail:
                return
            raise ValueError(f"{path}:{i}: not valid JSON ({e.msg})") from e
        if not isinstance(obj, dict):
            raise ValueError(f"{path}:{i}: expected a JSON object per line, got {type(obj).__name__}")
        yield i, obj


def _dump(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=False)


def write_jsonl_atomic(path: str | Path, rows: Iterable[dict]) -> None:
    """Write all rows to a temp file in the same folder, fsync, then rename over `path`.

    Readers see either the old file or the complete new one, never a prefix.
    """
    with atomic_open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(_dump(row) + "\n")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Same guarantee as `write_jsonl_atomic`, for a summary or report file."""
    atomic_write_text(path, text)


class JsonlAppender:
    """Append one row per call and make it durable before returning (flush + fsync).

    Used for results that finish out of order: after a crash every row written so far is on disk,
    at most the last line is cut short.
    """

    def __init__(self, path: str | Path, truncate: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f: IO[str] | None = self.path.open("w" if truncate else "a", encoding="utf-8")

    def append(self, row: dict) -> None:
        if self._f is None:
            raise ValueError(f"{self.path}: appender is closed")
        self._f.write(_dump(row) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
