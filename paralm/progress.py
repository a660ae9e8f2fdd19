"""Progress for long work: a tqdm bar on a terminal, plain periodic lines when stderr is not one.

Every long-running command (pack, vad, transcribe, annotate, condense, generate, judge) wraps its main
loop in `progress(...)`, so a job log shows samples done / total, the rate and the time left instead of
hours of silence. Lines go to stderr, so a command's stdout (summaries, JSON) stays clean.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class LineProgress:
    """tqdm's `update/close/set_postfix_str` surface, printing one line every `every_s` seconds."""

    def __init__(self, total: int | None, desc: str, unit: str, every_s: float, stream) -> None:
        self.total, self.desc, self.unit, self.every_s, self.stream = total, desc, unit, every_s, stream
        self.n, self.t0, self.last, self.postfix = 0, time.monotonic(), time.monotonic(), ""

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.t0, 1e-9)
        rate = self.n / elapsed
        parts = [f"{self.desc}: {self.n}" + (f"/{self.total}" if self.total else "") + f" {self.unit}",
                 f"{rate:.1f} {self.unit}/s"]
        if self.total and rate > 0:
            parts.append(f"eta {max(self.total - self.n, 0) / rate:.0f} s")
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            print(self.line(), file=self.stream, flush=True)

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def close(self) -> None:
        print(self.line() + " (done)", file=self.stream, flush=True)


def progress_bar(total: int | None, desc: str, unit: str = "samples", every_s: float = 30.0,
                 stream=None, disable: bool = False):
    """A bar with `update(n)` / `close()`: tqdm on a terminal, `LineProgress` otherwise (None if disabled)."""
    stream = stream if stream is not None else sys.stderr
    if disable:
        return None
    if getattr(stream, "isatty", lambda: False)():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True)
    return LineProgress(total, desc, unit, every_s, stream)


def progress(items: Iterable[T], total: int | None = None, desc: str = "", unit: str = "samples",
             every_s: float = 30.0, stream=None, disable: bool = False) -> Iterator[T]:
    """Yield `items`, reporting progress (see module docstring); the bar is closed even on errors."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    bar = progress_bar(total, desc, unit, every_s, stream, disable)
    try:
        for item in items:
            yield item
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
