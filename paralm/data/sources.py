"""Named data sources: a shard index directory, a kind (general | implicit) and a mixture weight.

Why names: ablation rows and sweeps talk about "the implicit QA source at weight 0.3", logs report
realised counts per source, and per-source losses are keyed by name. A source expands into items, one
per QA pair of every clip in its split (a clip with k QA pairs gives k items).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from paralm.data.index import IndexRow, ShardIndex
from paralm.data.plan import Pool
from paralm.data.schema import SOURCE_KINDS
from paralm.data.skips import SkipCounter

SOURCE_MODES = ("indexed", "streaming")


@dataclass(frozen=True)
class SourceSpec:
    """One named data source.

    Args:
        name: unique name, used in logs, per-source metrics and ablation tables.
        path: directory holding the shards and their index.
        kind: "general" (ordinary instruction data, explicit prompts allowed) or "implicit"
            (QA pairs generated from paralinguistic labels); `implicit_ratio` splits mass by kind.
        weight: unnormalised mixture weight (probabilities are weights / sum of weights).
        split: which index split this source reads ("train", "val", "test", ...).
        mode: "indexed" (planned from the shard index: exact resume, equal batches per rank, duration
            buckets) or "streaming" (reads a published shard folder without an index, train only, with
            the weaker guarantees in docs/data.md; `split` is not applied there).
    """

    name: str
    path: str
    kind: str = "general"
    weight: float = 1.0
    split: str = "train"
    mode: str = "indexed"

    def __post_init__(self) -> None:
        if self.mode not in SOURCE_MODES:
            raise ValueError(
                f"source {self.name!r}: unknown mode {self.mode!r}; valid: {', '.join(SOURCE_MODES)}"
            )
        if not self.name:
            raise ValueError("source name must be a non-empty string")
        if self.kind not in SOURCE_KINDS:
            raise ValueError(
                f"source {self.name!r}: unknown kind {self.kind!r}; valid: {', '.join(SOURCE_KINDS)}"
            )
        if self.weight < 0:
            raise ValueError(f"source {self.name!r}: weight must be >= 0, got {self.weight}")


@dataclass
class LoadedSource:
    """A source with its index rows expanded into items.

    Args:
        spec: the source definition.
        root: the index directory (shard paths in rows are relative to it).
        rows: index rows of the source's split.
        items: (n_items, 2) int64: (row position in `rows`, qa index) per item.
        index_skips: rows the index set aside when it was loaded (duplicate keys).
    """

    spec: SourceSpec
    root: Path
    rows: list[IndexRow]
    items: np.ndarray
    index_skips: SkipCounter = field(default_factory=SkipCounter)

    @property
    def name(self) -> str:
        return self.spec.name

    def item(self, i: int) -> tuple[IndexRow, int]:
        r, q = self.items[i]
        return self.rows[int(r)], int(q)

    def pool(self) -> Pool:
        durations = np.array([self.rows[int(r)].duration for r in self.items[:, 0]], dtype=np.float64)
        return Pool(self.spec.name, self.spec.kind, float(self.spec.weight), durations)


def load_source(spec: SourceSpec) -> LoadedSource:
    """Read the source's index and expand its split into (row, qa) items (clips without QA give none)."""
    index = ShardIndex.load(spec.path)
    rows = index.filter(split=spec.split)
    pairs = [(r, q) for r, row in enumerate(rows) for q in range(int(row.n_qa))]
    items = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return LoadedSource(spec=spec, root=Path(index.root), rows=rows, items=items, index_skips=index.skips)


def load_sources(specs: list[SourceSpec]) -> list[LoadedSource]:
    """Load several sources; names must be unique and every source must have items."""
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"source names must be unique; repeated: {dupes}")
    loaded = [load_source(s) for s in specs]
    for src in loaded:
        if len(src.items) == 0:
            raise ValueError(
                f"source {src.name!r} has no QA items in split {src.spec.split!r} under {src.spec.path}"
            )
    return loaded
