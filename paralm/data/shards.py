"""Shard sets: write samples into tar shards with an index, and scan shards sequentially without one.

A sample is two tar members, `{key}.{audio ext}` and `{key}.json`. Writers validate the metadata
with the schema and refuse duplicate keys; `ShardWriter` rolls over to a new shard once the current
one reaches `shard_bytes`, writes every shard under a temporary name first and the index last, so
an interrupted writer never leaves a half shard or an index pointing at missing data.

`scan_shard` is the index-free path (streaming mode, verification, indexing foreign shards): it walks
a tar member by member, groups members by key, and reports each group as a `RawSample` or a
`SkipRecord` with the same reasons the indexed reader uses.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from paralm.data.index import INDEX_NAME, IndexRow, ShardIndex, ShardRow
from paralm.data.reader import iter_samples
from paralm.data.schema import dumps_strict, validate_sample
from paralm.data.skips import SkipRecord
from paralm.data.staging import new_staging, publish
from paralm.data.tario import (
    AUDIO_EXTS,
    TarMember,
    TarTruncated,
    TarWriter,
    group_key,
    iter_members,
    member_problem,
    split_member,
)

__all__ = [
    "DEFAULT_SHARD_BYTES",
    "DuplicateKeyError",
    "RawSample",
    "ShardWriter",
    "iter_samples",
    "scan_shard",
    "write_shards",
]

DEFAULT_SHARD_BYTES = 256 * 1024 * 1024


class DuplicateKeyError(ValueError):
    """A writer was given a key it has already written."""


# --- writing ----------------------------------------------------------------------------------
def audio_ext(ext: str) -> str:
    ext = ext.lower().lstrip(".")
    if ext not in AUDIO_EXTS:
        raise ValueError(f"unsupported audio extension {ext!r}; valid: {', '.join(AUDIO_EXTS)}")
    return ext


class ShardWriter:
    """Writes `{prefix}-{i:06d}.tar` shards and `index.json` into `out_dir`.

    With `append=True` an existing set is extended: its rows are kept, its keys stay taken, and new
    shards continue the numbering. Use as a context manager; an exception aborts the open shard.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        prefix: str = "shard",
        shard_bytes: int = DEFAULT_SHARD_BYTES,
        append: bool = False,
    ) -> None:
        if shard_bytes <= 0:
            raise ValueError(f"shard_bytes must be positive, got {shard_bytes}")
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", prefix):
            raise ValueError(f"prefix {prefix!r} must match [A-Za-z0-9_-]+")
        self.out_dir, self.prefix, self.shard_bytes = Path(out_dir), prefix, shard_bytes
        self.out_dir.mkdir(parents=True, exist_ok=True)
        exists = (self.out_dir / INDEX_NAME).exists()
        if exists and not append:
            raise FileExistsError(
                f"{self.out_dir} already holds a shard set; pass append=True or use a new directory"
            )
        self.index = ShardIndex.load(self.out_dir) if exists else ShardIndex(root=self.out_dir)
        self._keys = {r.key for r in self.index.samples}
        self._next = self._first_free_number()
        self._tar: TarWriter | None = None
        self._rows: list[IndexRow] = []

    def _first_free_number(self) -> int:
        numbers = [
            int(m.group(1))
            for s in self.index.shards
            if (m := re.fullmatch(rf"{self.prefix}-(\d+)\.tar", s.path))
        ]
        return max(numbers, default=-1) + 1

    def add(self, meta: dict, audio: bytes, ext: str) -> IndexRow:
        """Write one sample (metadata validated, audio bytes copied as they are); returns its index row."""
        validate_sample(meta)
        ext = audio_ext(ext)
        key = meta["key"]
        if key in self._keys:
            raise DuplicateKeyError(f"duplicate key {key!r}: already written to this shard set")
        meta_bytes = dumps_strict(meta)
        if self._tar is None:
            self._tar = TarWriter(self.out_dir / f"{self.prefix}-{self._next:06d}.tar")
        audio_offset = self._tar.add(f"{key}.{ext}", audio)
        json_offset = self._tar.add(f"{key}.json", meta_bytes)
        offsets = (audio_offset, len(audio), json_offset, len(meta_bytes))
        row = IndexRow.from_meta(meta, self._tar.path.name, f"{key}.{ext}", offsets)
        self._keys.add(key)
        self._rows.append(row)
        if self._tar.offset >= self.shard_bytes:
            self._finish_shard()
        return row

    def _finish_shard(self) -> None:
        if self._tar is None:
            return
        sha, size = self._tar.close()
        duration = round(sum(r.duration for r in self._rows), 6)
        self.index.shards.append(ShardRow(self._tar.path.name, len(self._rows), duration, sha, size))
        self.index.add_rows(self._rows)
        self._tar, self._rows, self._next = None, [], self._next + 1

    def close(self, skipped: Iterable[SkipRecord] = ()) -> ShardIndex:
        """Finish the open shard and write the index (with `skipped` inputs recorded beside it)."""
        self._finish_shard()
        self.index.pack_skipped.extend(skipped)
        self.index.save()
        return self.index

    def abort(self) -> None:
        if self._tar is not None:
            self._tar.abort()
            self._tar = None

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def write_shards(
    samples: Iterable[tuple[dict, bytes, str]],
    out_dir: str | os.PathLike,
    prefix: str = "shard",
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    append: bool = False,
) -> ShardIndex:
    """Write (meta, encoded audio bytes, audio ext) samples as a shard set; raises on bad metadata or duplicates.

    Creation stages use this to copy audio from one shard set into another without re-encoding. A new set
    is written into a staging folder and published in one rename (`paralm.data.staging`), so `out_dir`
    never holds shards of an unfinished run; `out_dir` must not exist or be empty. `append=True` extends an
    existing set in place (its index is replaced atomically last, so a reader never sees a new shard early).
    """
    if append:
        with ShardWriter(out_dir, prefix=prefix, shard_bytes=shard_bytes, append=True) as writer:
            for meta, audio, ext in samples:
                writer.add(meta, audio, ext)
            return writer.close()
    out_dir = Path(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        what = "already holds a shard set" if (out_dir / INDEX_NAME).exists() else "is not empty"
        raise FileExistsError(f"{out_dir} {what}; pass append=True or use a new directory")
    staging = new_staging(out_dir)
    try:
        with ShardWriter(staging, prefix=prefix, shard_bytes=shard_bytes) as writer:
            for meta, audio, ext in samples:
                writer.add(meta, audio, ext)
            index = writer.close()
        publish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    index.root = out_dir
    return index


# --- sequential scanning ----------------------------------------------------------------------
@dataclass
class RawSample:
    """A complete member group read from a shard: undecoded metadata and audio bytes plus offsets."""

    key: str
    shard: str
    audio_member: str
    audio: bytes
    meta_bytes: bytes
    audio_offset: int
    json_offset: int


def _finish_group(
    key: str, members: list[TarMember], shard: str, seen_keys: set[str]
) -> RawSample | SkipRecord:
    for reason in ("unsafe_member_name", "unsupported_member"):
        bad = [m.name for m in members if member_problem(m.name) == reason]
        if bad:
            return SkipRecord(key, shard, reason, f"member {bad[0]!r}")
    exts = [split_member(m.name)[1] for m in members]
    if key in seen_keys:
        return SkipRecord(key, shard, "duplicate_key", "key already seen in this scan")
    seen_keys.add(key)
    by_ext = {ext: m for ext, m in zip(exts, members, strict=True)}
    audio = next((by_ext[e] for e in AUDIO_EXTS if e in by_ext), None)
    meta = by_ext.get("json")
    if audio is None or meta is None:
        what = "no .json member" if meta is None else f"no audio member (.{', .'.join(AUDIO_EXTS)})"
        return SkipRecord(key, shard, "missing_member", what)
    return RawSample(key, shard, audio.name, audio.data, meta.data, audio.offset_data, meta.offset_data)


def scan_shard(
    source: BinaryIO | str | os.PathLike, shard: str | None = None, seen_keys: set[str] | None = None
) -> Iterator[RawSample | SkipRecord]:
    """Walk one tar shard in order, yielding each member group as a RawSample or a SkipRecord.

    `source` is a path or an open binary stream (then `shard` names it in records). `seen_keys` is
    shared across the shards of one pass to count duplicate keys. A shard that ends early yields one
    `truncated_shard` record, for the sample the cut destroyed (or "" for an empty shard); samples
    before the cut come out normally, and those after it are unknowable without an index.
    """
    seen_keys = set() if seen_keys is None else seen_keys
    if not hasattr(source, "read"):
        shard = shard or str(source)
        with open(source, "rb") as f:
            yield from scan_shard(f, shard, seen_keys)
        return
    shard = shard or "<stream>"
    key, members = None, []
    try:
        for member in iter_members(source):
            member_key = group_key(member.name)
            if members and (member_key != key or _ext(member) in {_ext(m) for m in members}):
                yield _finish_group(key, members, shard, seen_keys)
                members = []
            key = member_key
            members.append(member)
    except TarTruncated as exc:
        yield from _truncated(exc, key, members, shard, seen_keys)
        return
    if members:
        yield _finish_group(key, members, shard, seen_keys)


def _ext(member: TarMember) -> str:
    return split_member(member.name)[1]


def _truncated(exc: TarTruncated, key, members: list[TarMember], shard: str, seen_keys: set[str]):
    """One truncated_shard record for the cut sample; the group before the cut is kept if it is whole.

    When the cut member belongs to another key, or the group holds json + audio and the cut hit a
    header, the group in progress was complete; otherwise it is the sample the cut destroyed.
    """
    cut_key = group_key(exc.member) if exc.member is not None else None
    whole = {"json"} <= {_ext(m) for m in members} and any(_ext(m) in AUDIO_EXTS for m in members)
    if members and cut_key != key and (cut_key is not None or whole):
        yield _finish_group(key, members, shard, seen_keys)
        members = []
    yield SkipRecord(key if members else (cut_key or ""), shard, "truncated_shard", str(exc))
