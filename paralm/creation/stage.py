"""Shared plumbing of every creation stage: read a shard set, transform samples in batches, write a new set.

A stage never edits its input: it reads `src` through the shard index, hands batches of `StageSample`s
to a transform, and writes whatever the transform returns as a fresh shard set in `out` (with its own
index). Every sample that leaves a stage carries `meta["provenance"][stage]`, a dict describing what
produced the fields that stage wrote (model, version, parameters); rerunning the same stage on its own
output updates that dict key by key, so e.g. two `annotate` runs with different annotators keep both
records. Each run ends with a `StageReport` (counts of samples read and written, the transform's own
counters, and unreadable inputs by skip reason), printed and saved as `out/stage_<name>.json`
(skipped keys in `out/stage_<name>_skipped.jsonl`). While it runs, samples read / total, the rate and the
time left go to stderr (paralm.progress: a bar on a terminal, a line every 30 s in a job log).

Writing a new stage:

    def transform(batch: list[StageSample], counts: Counter) -> list[StageSample]:
        for s in batch:
            s.meta["my_field"] = compute(s.audio)      # s.audio: float32 mono (N,) at `sample_rate`
            counts["labelled"] += 1                    # shows up in the report
        return batch                                   # 0..n outputs per input are fine

    def main(argv: list[str]) -> int:
        args = add_stage_args(argparse.ArgumentParser(prog="paralm data mystage")).parse_args(argv)
        return run_cli("paralm data mystage", lambda: run_stage(
            args.src, args.out, "mystage", transform, record={"model": ..., "version": ...},
            sample_rate=16000, batch_size=args.batch_size, shard_bytes=args.shard_bytes))

`sample_rate=None` skips decoding (text-only stages); then `s.audio` is None. A transform that cuts
new samples from one (windows) uses `s.derive(key, meta, audio, rate)`, which encodes the audio and
sets key and duration. `read_samples` gives the same decoded stream outside a stage (e.g. a first
pass that fits something on the whole set before `run_stage` writes).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from paralm.cli_flags import add_shard_size
from paralm.data.index import ShardIndex
from paralm.data.reader import DecodeOptions, SkipSample, decode_audio, iter_samples
from paralm.data.shards import DEFAULT_SHARD_BYTES, write_shards
from paralm.data.skips import SkipCounter
from paralm.fault.exits import EXIT_USER_ERROR
from paralm.progress import progress

__all__ = [
    "StageReport",
    "StageSample",
    "Transform",
    "add_stage_args",
    "encode_audio",
    "read_samples",
    "run_cli",
    "run_stage",
    "stamp_provenance",
]


_FORMATS = {"flac": "FLAC", "wav": "WAV", "ogg": "OGG"}


def encode_audio(audio: np.ndarray, sample_rate: int, ext: str = "flac") -> bytes:
    """float32 mono (N,) -> encoded bytes in the container named by `ext` (flac | wav | ogg)."""
    if ext not in _FORMATS:
        raise ValueError(f"cannot encode audio as {ext!r}; choose one of {sorted(_FORMATS)}")
    buf = io.BytesIO()
    subtype = "PCM_16" if ext in ("flac", "wav") else None
    sf.write(buf, np.clip(audio, -1.0, 1.0), sample_rate, format=_FORMATS[ext], subtype=subtype)
    return buf.getvalue()


@dataclass
class StageSample:
    """One sample passing through a stage.

    Args:
        key: sample key (also `meta["key"]`).
        meta: the sample's JSON metadata; a transform edits it in place or builds a new dict.
        audio_bytes: the encoded audio member as stored (rewritten unchanged unless a transform replaces it).
        ext: audio member extension without the dot ("flac", "wav", "ogg").
        audio: decoded float32 mono audio at the stage's sample rate, shape (N,); None for text-only stages.
        sample_rate: rate of `audio` in Hz (0 when not decoded).
    """

    key: str
    meta: dict
    audio_bytes: bytes
    ext: str
    audio: np.ndarray | None = None
    sample_rate: int = 0

    def derive(self, key: str, meta: dict, audio: np.ndarray, sample_rate: int, ext: str = "flac") -> StageSample:
        """A new sample cut from this one (e.g. a speech window): (N,) audio encoded, key and duration set."""
        meta = dict(meta, key=key, duration=round(len(audio) / sample_rate, 6))
        data = encode_audio(audio, sample_rate, ext)
        return StageSample(key, meta, data, ext, audio, sample_rate)


# transform(batch, counts) -> output samples; `counts` is the report's counter for stage-specific tallies
Transform = Callable[[list[StageSample], Counter], Iterable[StageSample]]


@dataclass
class StageReport:
    """What a stage did: counts by name and the provenance record it stamped.

    Args:
        stage: stage name (the key under `meta["provenance"]`).
        src: input shard directory.
        out: output shard directory.
        record: the provenance record stamped on every output sample.
        counts: `read`, `written` and the transform's own counters, in insertion order.
        skips: input samples dropped (unreadable metadata or audio), by reason and key.
    """

    stage: str
    src: str
    out: str
    record: dict
    counts: Counter = field(default_factory=Counter)
    skips: SkipCounter = field(default_factory=SkipCounter)

    def to_dict(self) -> dict:
        return {"stage": self.stage, "src": self.src, "out": self.out, "record": self.record,
                "counts": dict(self.counts), "skipped": self.skips.nonzero()}

    def summary(self) -> str:
        lines = [f"{self.stage}: {self.src} -> {self.out}"]
        lines += [f"  {name:<28} {n}" for name, n in self.counts.items()]
        lines += [f"  {'skipped:' + reason:<28} {n}" for reason, n in self.skips.nonzero().items()]
        return "\n".join(lines)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return path


def stamp_provenance(meta: dict, stage: str, record: dict) -> dict:
    """Merge `record` into `meta["provenance"][stage]` (new keys win, other keys kept); returns meta."""
    prov = meta.setdefault("provenance", {})
    old = prov.get(stage)
    prov[stage] = {**old, **record} if isinstance(old, dict) else dict(record)
    return meta


def add_stage_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments every stage command shares: input dir, --out, --batch-size, --shard-size."""
    parser.add_argument("src", help="input shard directory (read only; never modified)")
    parser.add_argument("--out", required=True, help="output shard directory (must be new or empty)")
    parser.add_argument("--batch-size", type=int, default=16, help="samples per transform call")
    add_shard_size(parser, DEFAULT_SHARD_BYTES)  # --shard-size SIZE; old --shard-mb MiB kept hidden
    return parser


USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError)


def run_cli(prog: str, fn: Callable[[], object]) -> int:
    """Run a stage command's body; bad input (ValueError, missing or occupied paths) becomes one line on
    stderr and exit code 2 instead of a traceback. Returns 0 on success."""
    try:
        fn()
    except USER_ERRORS as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


def _check_dirs(src: Path, out: Path) -> None:
    if not src.is_dir():
        raise FileNotFoundError(f"input shard directory {src} does not exist")
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise ValueError(f"--out {out} must be outside the input {src}: stages never write into their input")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"--out {out} exists and is not empty; choose a new directory")


def read_samples(src: str | Path, sample_rate: int | None, skips: SkipCounter,
                 index: ShardIndex | None = None) -> Iterator[StageSample]:
    """Every readable sample of the shard set `src`, in index order; unreadable ones are counted in `skips`.

    With `sample_rate`, audio is decoded to float32 mono at that rate (corrupt or non-finite audio is
    a counted skip); without, `audio` stays None. Transcripts may be empty (stages may fill them).
    """
    opts = DecodeOptions(sample_rate=sample_rate or 16000, require_transcript=False)
    for row, meta, data in iter_samples(index or ShardIndex.load(src), skips):
        sample = StageSample(row.key, meta, data, row.audio_member.split(".", 1)[1])
        if sample_rate is not None:
            try:
                sample.audio = decode_audio(data, opts)
            except SkipSample as err:
                skips.delivered -= 1  # iter_samples counted it as delivered; it is a skip after all
                skips.add(err.reason, row.key, row.shard, err.detail)
                continue
            sample.sample_rate = sample_rate
        yield sample


def _batches(samples: Iterable[StageSample], size: int) -> Iterator[list[StageSample]]:
    batch: list[StageSample] = []
    for s in samples:
        batch.append(s)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_stage(src: str | Path, out: str | Path, stage: str, transform: Transform, *, record: dict[str, Any],
              sample_rate: int | None = 16000, batch_size: int = 16, shard_bytes: int = DEFAULT_SHARD_BYTES,
              quiet: bool = False, show_progress: bool | None = None) -> StageReport:
    """Read `src`, apply `transform` batch by batch, write the outputs to a new shard set in `out`.

    Args:
        src: input shard directory (with its index); never modified.
        out: output directory; must not exist yet or be empty, and must not lie inside `src`.
        stage: stage name, the key under `meta["provenance"]`.
        transform: `(batch, counts) -> outputs`; see the module docstring.
        record: provenance record (JSON-serialisable) merged into every sample's `meta["provenance"][stage]`.
        sample_rate: decode audio to mono float32 at this rate before the transform; None = don't decode.
        batch_size: samples per transform call.
        shard_bytes: start a new output shard once one reaches this size.
        quiet: don't print the summary.
        show_progress: progress lines on stderr (default: unless `quiet`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    src, out = Path(src), Path(out)
    _check_dirs(src, out)
    report = StageReport(stage, str(src), str(out), record)
    report.counts["read"] = 0
    report.counts["written"] = 0

    index = ShardIndex.load(src)
    shown = not quiet if show_progress is None else show_progress

    def stamped() -> Iterator[StageSample]:
        samples = read_samples(src, sample_rate, report.skips, index)
        for sample in progress(samples, total=len(index.samples), desc=stage, disable=not shown):
            report.counts["read"] += 1
            stamp_provenance(sample.meta, stage, record)
            yield sample

    def outputs() -> Iterator[tuple[dict, bytes, str]]:
        for batch in _batches(stamped(), batch_size):
            for s in transform(batch, report.counts):
                report.counts["written"] += 1
                yield s.meta, s.audio_bytes, s.ext

    write_shards(outputs(), out, shard_bytes=shard_bytes)
    report.write(out / f"stage_{stage}.json")
    if report.skips.total:
        report.skips.write_skipped(out / f"stage_{stage}_skipped.jsonl")
    if not quiet:
        print(report.summary())
    return report
