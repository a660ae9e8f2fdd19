"""Read one indexed sample by byte offset and turn it into checked, mono, resampled audio plus metadata.

Every way a sample can be unusable ends in `SkipSample(reason)` with a reason from `SKIP_REASONS`,
so callers count skips instead of crashing or silently dropping data. Decoders are explicit:
JSON through `json`, audio through soundfile (FLAC/OGG/Opus/WAV/MP3); pickle members are never
opened, and `pipe:` shard paths are refused (reading by offset needs a seekable local file).

`SampleReader` holds no open files and no state between calls, so it pickles into dataloader
workers and every `read` is independent: open, seek, read the header + data of two members, close.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from paralm.data.index import IndexRow, ShardIndex, escapes
from paralm.data.schema import SchemaError, StrictJSONError, loads_strict, validate_sample
from paralm.data.skips import SkipCounter, SkipRecord
from paralm.data.tario import MemberMismatch, TarTruncated, member_problem, read_member, split_member


class SkipSample(Exception):
    """A sample that cannot be used; `reason` is one of SKIP_REASONS, `detail` says what was seen."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class LoadedSample:
    """A decoded sample. audio: (n,) float32 mono at `sample_rate`.

    `skipped` carries skip records noticed just before this sample (streaming mode uses it to move
    counts out of dataloader workers alongside the data); it is empty for indexed reads.
    """

    key: str
    audio: np.ndarray
    sample_rate: int
    meta: dict
    shard: str
    skipped: tuple[SkipRecord, ...] = field(default_factory=tuple)

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


@dataclass(frozen=True)
class DecodeOptions:
    """What a usable sample is.

    Args:
        sample_rate: output sample rate in Hz (audio is resampled with soxr).
        min_duration: clips shorter than this (seconds) are skipped as too_short.
        max_duration: clips longer than this (seconds) are skipped as too_long; None = no limit.
        require_transcript: skip samples whose transcript is empty (creation stages that fill
            transcripts turn this off).
    """

    sample_rate: int = 16000
    min_duration: float = 0.0
    max_duration: float | None = None
    require_transcript: bool = True


def parse_meta(meta_bytes: bytes, key: str) -> dict:
    """JSON bytes -> validated metadata dict for `key` (bad_json / schema skips).

    Parsed strictly (`loads_strict`): NaN, Infinity, out-of-range numbers and lone surrogates, which
    every writer refuses, are refused here too, so a tampered sample is a counted `bad_json` skip at read
    time instead of a crash in a later stage."""
    try:
        meta = loads_strict(meta_bytes)
    except (StrictJSONError, json.JSONDecodeError) as exc:
        raise SkipSample("bad_json", str(exc)) from exc
    try:
        validate_sample(meta)
    except SchemaError as exc:
        raise SkipSample("schema", str(exc)) from exc
    if meta["key"] != key:
        raise SkipSample("schema", f"metadata key {meta['key']!r} differs from member key {key!r}")
    return meta


def decode_audio(data: bytes, opts: DecodeOptions) -> np.ndarray:
    """Encoded audio bytes -> (n,) float32 mono at opts.sample_rate, checked for finiteness and length."""
    try:
        wav, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, EOFError) as exc:
        raise SkipSample("corrupt_audio", _decode_error_text(exc)) from exc
    if not np.isfinite(wav).all():
        raise SkipSample("non_finite_audio", f"{int((~np.isfinite(wav)).sum())} NaN/inf values")
    mono = wav.mean(axis=1) if wav.shape[1] > 1 else wav[:, 0]
    seconds = len(mono) / sr
    if len(mono) == 0 or seconds < opts.min_duration:
        raise SkipSample("too_short", f"{seconds:.3f} s < min_duration {opts.min_duration} s")
    if opts.max_duration is not None and seconds > opts.max_duration:
        raise SkipSample("too_long", f"{seconds:.3f} s > max_duration {opts.max_duration} s")
    if sr != opts.sample_rate:
        mono = soxr.resample(mono, sr, opts.sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _decode_error_text(exc: Exception) -> str:
    """libsndfile's reason without the in-memory buffer's repr (an address that differs every run, which
    would make skip files of identical runs differ)."""
    text = getattr(exc, "error_string", None) or str(exc)
    return f"{type(exc).__name__}: {text}"


def decode_sample(key: str, shard: str, meta_bytes: bytes, audio: bytes, opts: DecodeOptions) -> LoadedSample:
    """Shared by the indexed reader and the streaming pipeline, so both skip for the same reasons."""
    meta = parse_meta(meta_bytes, key)
    if opts.require_transcript and not meta["transcript"].strip():
        raise SkipSample("empty_transcript", "transcript is empty")
    wav = decode_audio(audio, opts)
    return LoadedSample(key=key, audio=wav, sample_rate=opts.sample_rate, meta=meta, shard=shard)


def check_member_name(name: str) -> None:
    problem = member_problem(name)
    if problem is not None:
        raise SkipSample(problem, f"member {name!r}")
    if not split_member(name)[1]:
        raise SkipSample("unsupported_member", f"member {name!r} has no extension")


def refuse_pipe(url: str, allow_unsafe: bool) -> None:
    if url.startswith("pipe:") and not allow_unsafe:
        raise ValueError(
            f"refusing shard {url!r}: pipe: URLs run a shell command; pass allow_unsafe=True to allow"
        )


def _read_json_member(path: Path, row: IndexRow) -> bytes:
    with open(path, "rb") as f:
        return read_member(f, row.json_offset, row.json_size, f"{row.key}.json", os.fstat(f.fileno()).st_size)


def read_raw(path: Path, row: IndexRow) -> tuple[bytes, bytes]:
    """(json bytes, audio bytes) of `row` from the shard at `path`; raises SkipSample.

    The metadata comes from `row.json_shard` (relative to the shard's folder) when the row names one."""
    check_member_name(row.audio_member)
    try:
        meta_bytes = _read_json_member(path.parent / row.json_shard, row) if row.json_shard else None
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if meta_bytes is None:
                meta_bytes = read_member(f, row.json_offset, row.json_size, f"{row.key}.json", size)
            audio = read_member(f, row.audio_offset, row.audio_size, row.audio_member, size)
    except FileNotFoundError as exc:
        raise SkipSample("truncated_shard", f"shard file missing: {path}") from exc
    except TarTruncated as exc:
        raise SkipSample("truncated_shard", str(exc)) from exc
    except MemberMismatch as exc:
        raise SkipSample("missing_member", str(exc)) from exc
    return meta_bytes, audio


def local_shard(root: Path, shard: str, allow_outside: bool = False) -> Path:
    """The local shard file an index row names, or a counted skip; every indexed reading path uses this.

    A `pipe:` or remote shard is never opened or run (`unsupported_member`: indexed reading seeks inside
    local files). A path that leaves the index folder (`../`, absolute, a symlink out) is refused as
    `unsafe_member_name` unless `allow_outside`, so an edited index cannot make a reader open any file.
    """
    if shard.startswith("pipe:") or "://" in shard:
        why = "pipe: URLs run a shell command" if shard.startswith("pipe:") else "not a local file"
        raise SkipSample("unsupported_member", f"shard {shard!r}: {why}; indexed reading needs local files")
    if not allow_outside and escapes(Path(root), shard):
        raise SkipSample("unsafe_member_name", f"shard {shard!r} leaves the index folder {root}")
    return Path(root) / shard


class SampleReader:
    """Reads `IndexRow`s of the shard set in `root` into `LoadedSample`s; raises `SkipSample`.

    Args:
        root: the shard set directory (where index.json lives; row shard paths are relative to it).
        sample_rate: output sample rate in Hz.
        min_duration: shorter clips are skipped (too_short).
        max_duration: longer clips are skipped (too_long); None = no limit.
        allow_unsafe: kept for symmetry with streaming mode; indexed reading seeks by offset in local
            files, so `pipe:` and remote shard paths are refused either way (with a message saying so).
        require_transcript: skip samples with an empty transcript.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        sample_rate: int = 16000,
        min_duration: float = 0.0,
        max_duration: float | None = None,
        allow_unsafe: bool = False,
        require_transcript: bool = True,
    ) -> None:
        if sample_rate <= 0 or min_duration < 0 or (max_duration is not None and max_duration < min_duration):
            raise ValueError(
                f"need sample_rate > 0 and 0 <= min_duration <= max_duration, got {sample_rate}, {min_duration}, {max_duration}"
            )
        self.root = Path(root)
        self.allow_unsafe = allow_unsafe
        self.opts = DecodeOptions(sample_rate, min_duration, max_duration, require_transcript)

    def shard_path(self, row: IndexRow) -> Path:
        return local_shard(self.root, row.shard)

    def read(self, row: IndexRow) -> LoadedSample:
        meta_bytes, audio = read_raw(self.shard_path(row), row)
        sample = decode_sample(row.key, row.shard, meta_bytes, audio, self.opts)
        if not math.isclose(sample.meta["duration"], row.duration, abs_tol=1e-3):
            raise SkipSample(
                "schema", f"metadata duration {sample.meta['duration']} != indexed {row.duration}"
            )
        return sample


def iter_samples(
    index: ShardIndex, skips: SkipCounter | None = None
) -> Iterator[tuple[IndexRow, dict, bytes]]:
    """Raw access in index order: (row, validated metadata, encoded audio bytes), audio not decoded.

    For stages that copy audio into new shards. Unreadable samples raise `SkipSample`, or, when
    `skips` is given, are counted there and left out.
    """
    for row in index.samples:
        try:
            meta_bytes, audio = read_raw(local_shard(index.root, row.shard), row)
            meta = parse_meta(meta_bytes, row.key)
        except SkipSample as exc:
            if skips is None:
                raise
            skips.add(exc.reason, row.key, row.shard, exc.detail)
            continue
        if skips is not None:
            skips.deliver()
        yield row, meta, audio
