"""Counted skips: every sample the data layer drops is counted by reason and remembered by key.

Why: a loader that silently drops broken samples changes the training distribution without
telling anyone. Here a skip is never silent: the counter knows how many samples were attempted
(`seen`), how many came out (`delivered`), how many were dropped per reason, and which keys were
dropped from which shard. Counters travel from dataloader workers to the main process with
`merge`, into checkpoints with `state_dict`, and to disk with `write_skipped`; `check_rate` stops a
run whose data is mostly broken instead of letting it train on the remainder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from paralm.atomic_files import atomic_open
from paralm.fault.exits import EXIT_SKIP_RATE, FaultExit

SKIP_REASONS: tuple[str, ...] = (
    "corrupt_audio",
    "missing_member",
    "bad_json",
    "schema",
    "empty_transcript",
    "non_finite_audio",
    "too_long",
    "too_short",
    "duplicate_key",
    "truncated_shard",
    "unsupported_member",
    "unsafe_member_name",
)


class SkipRateExceeded(FaultExit):
    """Raised by `SkipCounter.check_rate` when too large a share of the attempted samples was dropped.

    A deliberate stop, not a bug: the CLI prints its one line (rate, limit, reasons, skip log) and exits
    with EXIT_SKIP_RATE from the exit-code table, without a traceback."""

    exit_code = EXIT_SKIP_RATE


@dataclass(frozen=True)
class SkipRecord:
    """One dropped sample: which key, from which shard, why, and a one-line detail."""

    key: str
    shard: str
    reason: str
    detail: str = ""


def check_reason(reason: str) -> str:
    if reason not in SKIP_REASONS:
        raise ValueError(f"unknown skip reason {reason!r}; valid: {', '.join(SKIP_REASONS)}")
    return reason


class SkipCounter:
    """Counts attempted, delivered and skipped samples (by reason) and keeps the skipped keys.

    `seen` is derived (delivered + skipped), so a sample can never be counted as attempted twice.
    Records beyond `max_records` are counted but not kept, so a badly broken corpus cannot exhaust
    memory; `records_dropped` says how many were not kept.
    """

    def __init__(self, max_records: int = 100_000) -> None:
        self.max_records = max_records
        self._counts: dict[str, int] = dict.fromkeys(SKIP_REASONS, 0)
        self.delivered = 0
        self.records: list[SkipRecord] = []
        self.records_dropped = 0

    # --- counting -----------------------------------------------------------------------------
    def add(self, reason: str, key: str, shard: str, detail: str = "") -> SkipRecord:
        """Count one skipped sample."""
        record = SkipRecord(str(key), str(shard), check_reason(reason), _one_line(detail))
        self.add_record(record)
        return record

    def add_record(self, record: SkipRecord) -> None:
        self._counts[check_reason(record.reason)] += 1
        if len(self.records) < self.max_records:
            self.records.append(record)
        else:
            self.records_dropped += 1

    def extend(self, records: Iterable[SkipRecord]) -> None:
        for record in records:
            self.add_record(record)

    def deliver(self, n: int = 1) -> None:
        """Count `n` samples that were read successfully and handed on."""
        self.delivered += int(n)

    # --- views --------------------------------------------------------------------------------
    @property
    def counts(self) -> dict[str, int]:
        """Skips per reason, every reason present (zeros included) in `SKIP_REASONS` order."""
        return dict(self._counts)

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    @property
    def seen(self) -> int:
        """Samples attempted: delivered + skipped."""
        return self.delivered + self.total

    def nonzero(self) -> dict[str, int]:
        return {r: c for r, c in self._counts.items() if c}

    def summary(self) -> str:
        parts = ", ".join(f"{r}={c}" for r, c in self.nonzero().items()) or "none"
        return f"seen={self.seen} delivered={self.delivered} skipped={self.total} ({parts})"

    # --- combining and persistence ------------------------------------------------------------
    def merge(self, other: SkipCounter) -> SkipCounter:
        """Add another counter (e.g. one returned by a dataloader worker) into this one."""
        for reason, count in other._counts.items():
            self._counts[reason] += count
        self.delivered += other.delivered
        room = max(0, self.max_records - len(self.records))
        self.records.extend(other.records[:room])
        self.records_dropped += other.records_dropped + max(0, len(other.records) - room)
        return self

    def state_dict(self) -> dict:
        return {
            "counts": dict(self._counts),
            "delivered": self.delivered,
            "records": [asdict(r) for r in self.records],
            "records_dropped": self.records_dropped,
        }

    def load_state_dict(self, state: dict) -> None:
        unknown = set(state.get("counts", {})) - set(SKIP_REASONS)
        if unknown:
            raise ValueError(
                f"unknown skip reasons in state: {sorted(unknown)}; valid: {', '.join(SKIP_REASONS)}"
            )
        self._counts = dict.fromkeys(SKIP_REASONS, 0)
        self._counts.update({r: int(c) for r, c in state.get("counts", {}).items()})
        self.delivered = int(state.get("delivered", 0))
        self.records = [SkipRecord(**r) for r in state.get("records", [])]
        self.records_dropped = int(state.get("records_dropped", 0))

    def write_skipped(self, path: str | os.PathLike) -> Path:
        """Write the kept records as jsonl (key, shard, reason, detail), replacing the file atomically."""
        path = Path(path)
        with atomic_open(path, "w", encoding="utf-8") as f:
            for record in self.records:
                f.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")
        return path

    def check_rate(self, max_rate: float, min_seen: int = 100) -> None:
        """Raise `SkipRateExceeded` when more than `max_rate` of at least `min_seen` attempts were skipped.

        `min_seen` keeps one broken sample at the very start of a run from stopping it.
        """
        if not 0.0 <= max_rate <= 1.0:
            raise ValueError(f"max_rate must be in [0, 1], got {max_rate}")
        if self.seen < max(1, min_seen):
            return
        rate = self.total / self.seen
        if rate > max_rate:
            raise SkipRateExceeded(
                f"skipped {self.total} of {self.seen} samples ({rate:.1%} > max_skip_rate {max_rate:.1%}): "
                + ", ".join(f"{r}={c}" for r, c in self.nonzero().items())
            )

    def __repr__(self) -> str:
        return f"SkipCounter({self.summary()})"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:500]
