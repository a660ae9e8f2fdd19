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

import functools
import os
from collections.abc import Iterable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from paralm.atomic_files import atomic_open
from paralm.data.schema import dumps_strict, loads_strict
from paralm.data.skips import SkipCounter, SkipRecord
from paralm.data.tario import sha256_file
from paralm.fault.exits import UserError

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
        json_shard: tar holding the "{key}.json" member when it is not `shard`, relative to the folder of
            `shard` ("" = `shard`); an index of foreign shards keeps mapped metadata in a sidecar tar.
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
    json_shard: str = ""

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


_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "list[str]": (list,)}


class BadIndex(UserError):
    """An index.json that cannot be used (truncated, not JSON, a field of the wrong type): exit 2, one line."""


def _from_dict(cls, d: dict, where: str):
    """Build a row from one JSON object, checking every field's type so a tampered index is one clear line."""
    if not isinstance(d, dict):
        raise BadIndex(f"{where}: each {cls.__name__} entry must be an object, got {type(d).__name__}")
    names = {f.name for f in fields(cls)}
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    missing = [name for name in required if name not in d]
    if missing:
        raise BadIndex(f"{where}: {cls.__name__} entry {d.get('key', d.get('path', '?'))!r} lacks {missing}")
    for f in fields(cls):
        value = d.get(f.name)
        if f.name in d and (isinstance(value, bool) or not isinstance(value, _TYPES[f.type])
                            or (f.type == "list[str]" and not all(isinstance(v, str) for v in value))):
            raise BadIndex(f"{where}: field {f.name!r} of entry {d.get('key', d.get('path', '?'))!r} must be "
                              f"{f.type}, got {type(value).__name__} {str(value)[:40]!r}; rebuild the index")
    return cls(**{k: v for k, v in d.items() if k in names})


def _read_doc(path: Path) -> dict:
    """index.json -> its top-level object; anything else (truncated, not strict JSON) is an BadIndex."""
    try:
        doc = loads_strict(path.read_bytes())
    except (ValueError, OSError) as exc:  # JSONDecodeError and StrictJSONError are ValueErrors
        raise BadIndex(f"{path}: not a readable shard index ({exc}); rebuild it with `paralm data pack`") from None
    if not isinstance(doc, dict):
        raise BadIndex(f"{path}: a shard index is a JSON object, got {type(doc).__name__}")
    for name in ("shards", "samples", "pack_skipped"):
        if not isinstance(doc.get(name, []), list):
            raise BadIndex(f"{path}: {name!r} must be a list, got {type(doc[name]).__name__}")
    return doc


def escapes(root: Path, relative: str) -> bool:
    """True when an index path leaves the index folder (absolute, `..`, or a symlink out).

    Asked for every sample read, so the answer is cached per (folder, shard path)."""
    return _escapes(str(root), relative)


@functools.lru_cache(maxsize=4096)
def _escapes(root: str, relative: str) -> bool:
    if Path(relative).is_absolute() or ".." in Path(relative).parts:
        return True
    return not (Path(root) / relative).resolve().is_relative_to(Path(root).resolve())


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
        doc = _read_doc(path)
        if doc.get("version") != INDEX_VERSION:
            raise BadIndex(
                f"{path}: index version {doc.get('version')!r} not supported; valid: {INDEX_VERSION}"
            )
        index = cls(
            root=root,
            shards=[_from_dict(ShardRow, s, str(path)) for s in doc.get("shards", [])],
            pack_skipped=[_from_dict(SkipRecord, r, str(path)) for r in doc.get("pack_skipped", [])],
        )
        index.add_rows(_from_dict(IndexRow, s, str(path)) for s in doc.get("samples", []))
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
        with atomic_open(path, "wb") as f:
            f.write(dumps_strict(doc))
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
            if "://" in shard.path or shard.path.startswith("pipe:") or escapes(self.root, shard.path):
                problems.append(f"{shard.path}: not a file inside the index folder; not read")
                continue
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
