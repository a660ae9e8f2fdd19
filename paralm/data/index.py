"""The shard index: one row per sample (where its bytes are, how long it is, what it holds) and one per shard.

Why an index: training order is planned from it (mixture draw, duration buckets, equal batches per
rank) before a single byte of audio is read, and dataloader workers then read each planned sample
by byte offset. Streaming through tars cannot give that.

The index is a single JSON document `index.json` beside the shards (written atomically, so a reader
sees the old or the new index, never half of one):
    {"version": 1,
     "shards":  [{path, count, duration, sha256, bytes}, ...],
     "samples": [{key, shard, audio_member, audio_offset, audio_size, json_offset, json_size,
                  duration, split, corpus, source_kind, emotion, qa_types, n_qa}, ...],
     "pack_skipped": [{key, shard, reason, detail}, ...]}   # inputs refused when the set was written
Paths are relative to the index directory; offsets point at member data inside the tar.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from paralm.data.skips import SkipCounter, SkipRecord
from paralm.data.tario import sha256_file

INDEX_NAME = "index.json"
INDEX_VERSION = 1


@dataclass
class IndexRow:
    """Where one sample lives and what the planner needs to know about it without reading it.

    Args:
        key: sample key (also the member stem in the tar).
        shard: shard path relative to the index directory.
        audio_member: tar member name of the audio, e.g. "k.flac".
        audio_offset: byte offset of the audio member's data in the shard.
        audio_size: audio member size in bytes.
        json_offset: byte offset of the "{key}.json" member's data.
        json_size: json member size in bytes.
        duration: clip duration in seconds.
        split: train / val / test / ...
        corpus: corpus name.
        source_kind: "general" | "implicit", or "" when the metadata does not say.
        emotion: gold emotion or "".
        qa_types: question type of every QA pair, in qa order.
        n_qa: number of QA pairs.
    """

    key: str
    shard: str
    audio_member: str
    audio_offset: int
    audio_size: int
    json_offset: int
    json_size: int
    duration: float
    split: str
    corpus: str
    source_kind: str = ""
    emotion: str = ""
    qa_types: list[str] = field(default_factory=list)
    n_qa: int = 0

    @classmethod
    def from_meta(
        cls, meta: dict, shard: str, audio_member: str, offsets: tuple[int, int, int, int]
    ) -> IndexRow:
        """Summarise validated metadata `meta`; offsets = (audio_offset, audio_size, json_offset, json_size)."""
        gold = (meta.get("labels") or {}).get("gold") or {}
        qa = meta.get("qa") or []
        return cls(
            key=meta["key"],
            shard=shard,
            audio_member=audio_member,
            audio_offset=offsets[0],
            audio_size=offsets[1],
            json_offset=offsets[2],
            json_size=offsets[3],
            duration=float(meta["duration"]),
            split=meta["split"],
            corpus=meta["corpus"],
            source_kind=meta.get("source_kind", "") or "",
            emotion=gold.get("emotion") or "",
            qa_types=[q["type"] for q in qa],
            n_qa=len(qa),
        )


@dataclass
class ShardRow:
    """One shard file: path relative to the index dir, sample count, total seconds, sha256, size in bytes."""

    path: str
    count: int
    duration: float
    sha256: str
    bytes: int


def _from_dict(cls, d: dict):
    names = {f.name for f in fields(cls)}
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    missing = [name for name in required if name not in d]
    if missing:
        raise ValueError(f"{cls.__name__} entry lacks {missing}: {d}")
    return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class ShardIndex:
    """All rows of one shard set. `samples` holds unique keys; later duplicates are counted in `skips`."""

    root: Path
    samples: list[IndexRow] = field(default_factory=list)
    shards: list[ShardRow] = field(default_factory=list)
    pack_skipped: list[SkipRecord] = field(default_factory=list)
    skips: SkipCounter = field(default_factory=SkipCounter)

    @classmethod
    def load(cls, root: str | os.PathLike) -> ShardIndex:
        """Read `root/index.json`. Rows whose key already appeared are set aside as duplicate_key skips."""
        root = Path(root)
        path = root / INDEX_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"no shard index at {path}; build one with `paralm data pack` or write_shards()"
            )
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        if doc.get("version") != INDEX_VERSION:
            raise ValueError(
                f"{path}: index version {doc.get('version')!r} not supported; valid: {INDEX_VERSION}"
            )
        index = cls(
            root=root,
            shards=[_from_dict(ShardRow, s) for s in doc.get("shards", [])],
            pack_skipped=[SkipRecord(**r) for r in doc.get("pack_skipped", [])],
        )
        index.add_rows(_from_dict(IndexRow, s) for s in doc.get("samples", []))
        return index

    def add_rows(self, rows: Iterable[IndexRow]) -> None:
        seen = {row.key for row in self.samples}
        for row in rows:
            if row.key in seen:
                self.skips.add("duplicate_key", row.key, row.shard, "key already indexed earlier in this set")
                continue
            seen.add(row.key)
            self.samples.append(row)

    def save(self) -> Path:
        """Write `root/index.json` atomically (temp file, fsync, rename)."""
        self.root.mkdir(parents=True, exist_ok=True)
        doc = {
            "version": INDEX_VERSION,
            "shards": [asdict(s) for s in self.shards],
            "samples": [asdict(r) for r in self.samples],
            "pack_skipped": [asdict(r) for r in self.pack_skipped],
        }
        path = self.root / INDEX_NAME
        tmp = path.with_name(f".{INDEX_NAME}.tmp-{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    def filter(
        self, split: str | None = None, corpus: str | None = None, source_kind: str | None = None
    ) -> list[IndexRow]:
        """Rows matching every given field (None = any)."""
        return [
            r
            for r in self.samples
            if (split is None or r.split == split)
            and (corpus is None or r.corpus == corpus)
            and (source_kind is None or r.source_kind == source_kind)
        ]

    def shard_path(self, shard: str) -> Path:
        return self.root / shard

    @property
    def total_duration(self) -> float:
        return float(sum(r.duration for r in self.samples))

    def verify_shards(self) -> list[str]:
        """One line per shard that is missing or whose sha256 differs from the index (empty list = all good)."""
        problems = []
        for shard in self.shards:
            path = self.shard_path(shard.path)
            if not path.is_file():
                problems.append(f"{shard.path}: missing")
                continue
            digest = sha256_file(path)
            if digest != shard.sha256:
                problems.append(f"{shard.path}: sha256 {digest[:16]}... != indexed {shard.sha256[:16]}...")
        return problems

    def __len__(self) -> int:
        return len(self.samples)
