"""`paralm data pack`: audio files + a manifest -> tar shards (FLAC, OGG/Vorbis, OGG/Opus or PCM WAV) + index.

Every input is decoded before it is packed, so a file that will not decode, holds NaN/inf, or is
empty is reported with its key and reason and never reaches a shard; duplicate keys and metadata
that fails the schema are refused the same way. The refused inputs are listed in
`pack_skipped.jsonl` and in the index. Audio is mixed to mono, optionally resampled, and clipped to
[-1, 1] before integer encoding (FLAC would otherwise wrap around).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from paralm.cli_flags import add_shard_size
from paralm.data.command_exit import report_exit
from paralm.data.foreign.pack_foreign import add_arguments as add_foreign_arguments
from paralm.data.foreign.pack_foreign import check_inputs, main_foreign
from paralm.data.index import ShardIndex
from paralm.data.manifest import ManifestError, RowProblem, read_manifest, row_problem
from paralm.data.reader import SkipSample
from paralm.data.schema import SchemaError
from paralm.data.shards import DEFAULT_SHARD_BYTES, DuplicateKeyError, ShardWriter
from paralm.data.skips import SkipCounter
from paralm.data.staging import check_out_dir, new_staging, publish, remove_leftovers
from paralm.fault.exits import UserError
from paralm.progress import progress

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
MIN_RATE, MAX_RATE = 8000, 96000  # --sample-rate range
HIGH_RES_SUBTYPES = ("PCM_24", "PCM_32", "FLOAT", "DOUBLE")


@dataclass(frozen=True)
class AudioFormat:
    """How one output format is written: extension, soundfile format and subtype choice."""

    ext: str
    sf_format: str
    subtype: str

    def subtype_for(self, source_subtype: str) -> str:
        if self.sf_format in ("FLAC", "WAV") and source_subtype in HIGH_RES_SUBTYPES:
            return "PCM_24"
        return self.subtype


FORMATS: dict[str, AudioFormat] = {
    "flac": AudioFormat("flac", "FLAC", "PCM_16"),
    "ogg": AudioFormat("ogg", "OGG", "VORBIS"),
    "opus": AudioFormat("opus", "OGG", "OPUS"),
    "wav": AudioFormat("wav", "WAV", "PCM_16"),
}


@dataclass
class PackReport:
    """What a pack produced: the index, how many samples went in, and what was refused and why.

    `notes` holds lines about rows the user should look at although nothing failed for them (both rows
    of a duplicate key); `leftovers_removed` counts files of unfinished runs `--overwrite` deleted.
    """

    out_dir: Path
    index: ShardIndex
    skips: SkipCounter = field(default_factory=SkipCounter)
    notes: list[str] = field(default_factory=list)
    leftovers_removed: int = 0

    @property
    def packed(self) -> int:
        return len(self.index.samples)

    def summary(self) -> str:
        hours = self.index.total_duration / 3600
        lines = [
            f"packed {self.packed} samples ({hours:.2f} h) into {len(self.index.shards)} shard(s) in {self.out_dir}"
        ]
        if self.leftovers_removed:
            lines.append(f"removed {self.leftovers_removed} leftover(s) of unfinished runs (--overwrite)")
        if self.skips.total:
            lines.append(f"refused {self.skips.total} input(s): {self.skips.nonzero()}")
            lines += [f"  {r.key}: {r.reason} ({r.detail})" for r in self.skips.records[:20]]
        lines += [f"  {note}" for note in self.notes[:20]]
        return "\n".join(lines)


def load_audio(path: Path) -> tuple[np.ndarray, int, str]:
    """Decode one input file -> ((n,) float32 mono, sample rate, source subtype); raises SkipSample."""
    if not path.is_file():
        raise SkipSample("missing_member", f"audio file not found: {path}")
    try:
        info = sf.info(str(path))
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, EOFError, OSError) as exc:
        raise SkipSample("corrupt_audio", str(exc)) from exc
    if not np.isfinite(wav).all():
        raise SkipSample(
            "non_finite_audio", f"{int((~np.isfinite(wav)).sum())} NaN/inf values in {path.name}"
        )
    if wav.shape[0] == 0:
        raise SkipSample("too_short", f"{path.name} has no samples")
    return wav.mean(axis=1).astype(np.float32), sr, info.subtype


def audio_path(audio_root: Path, rel: str, allow_outside_root: bool = False) -> Path:
    """The file of a manifest `audio` path; one that leaves `audio_root` is refused unless allowed.

    Why: a manifest is input, often from someone else; `../`, an absolute path or a symlink out of the
    root would pack any readable file of the machine into a shard that is then shared. Refused as
    `unsafe_member_name` (counted), the same reason a tar member escaping its folder gets.
    """
    path = audio_root / rel
    if allow_outside_root:
        return path
    if path.resolve().is_relative_to(audio_root.resolve()):
        return path
    if Path(rel).is_absolute():
        how = "is absolute"
    elif ".." in Path(rel).parts:
        how = "climbs out with .."
    else:
        how = "leads out through a symlink"
    raise SkipSample(
        "unsafe_member_name",
        f"audio path {rel!r} {how} and resolves outside --audio-root {audio_root}; "
        "pass --allow-outside-root to permit",
    )


def encode_audio(
    wav: np.ndarray, sr: int, fmt: AudioFormat, source_subtype: str = "PCM_16"
) -> tuple[bytes, int]:
    """(n,) float32 -> encoded bytes; Opus only takes a few rates, so other rates are resampled up."""
    if fmt.subtype == "OPUS" and sr not in OPUS_RATES:
        target = next((r for r in OPUS_RATES if r >= sr), OPUS_RATES[-1])
        wav, sr = soxr.resample(wav, sr, target).astype(np.float32), target
    buf = io.BytesIO()
    sf.write(buf, np.clip(wav, -1.0, 1.0), sr, format=fmt.sf_format, subtype=fmt.subtype_for(source_subtype))
    return buf.getvalue(), sr


def _prepare(record: dict, path: Path, fmt: AudioFormat, sample_rate: int | None) -> tuple[dict, bytes]:
    wav, sr, subtype = load_audio(path)
    if sample_rate is not None and sr != sample_rate:
        wav, sr = soxr.resample(wav, sr, sample_rate).astype(np.float32), sample_rate
    data, sr = encode_audio(wav, sr, fmt, subtype)
    meta = {k: v for k, v in record.items() if k != "audio"}
    meta["duration"] = round(len(wav) / sr, 6)
    return meta, data


@dataclass
class _Rows:
    """Per-key bookkeeping of one pack: where each key was packed from, where it first failed."""

    packed_at: dict[str, str] = field(default_factory=dict)
    failed_at: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _pack_one(record, n: int, defaults: dict, writer: ShardWriter, skips: SkipCounter, rows: _Rows,
              opts: dict) -> None:
    """Pack one manifest entry or count why not; a key is taken only by a row that was packed."""
    if isinstance(record, RowProblem):
        skips.add(record.reason, record.key, record.audio, record.detail)
        return
    where = getattr(record, "where", "") or f"row {n}"
    record = {**defaults, **record}
    if record.get("key") is None and isinstance(record.get("audio"), str):
        record["key"] = Path(record["audio"]).stem
    key = record.get("key")
    key = key if isinstance(key, str) else repr(key)[:100]  # a non-string key fails the schema below
    try:
        problem = row_problem(record)
        if problem is not None:
            raise SkipSample(*problem)
        if key in rows.packed_at:
            raise DuplicateKeyError(f"key {key!r} already packed from {rows.packed_at[key]}; {where} refused")
        path = audio_path(opts["audio_root"], record["audio"], opts["allow_outside_root"])
        meta, data = _prepare(record, path, opts["fmt"], opts["sample_rate"])
        writer.add(meta, data, opts["fmt"].ext)
    except SkipSample as exc:
        reason, detail = exc.reason, exc.detail
    except DuplicateKeyError as exc:
        reason, detail = "duplicate_key", str(exc)
    except (SchemaError, TypeError, ValueError, RecursionError) as exc:
        reason, detail = "schema", str(exc)
    else:
        if key in rows.failed_at:
            rows.notes.append(f"key {key!r}: {rows.failed_at[key]} refused, {where} packed")
        rows.packed_at[key] = where
        skips.deliver()
        return
    rows.failed_at.setdefault(key, where)
    skips.add(reason, key, str(record.get("audio", ""))[:200], f"{where}: {detail}")


def pack(
    records: Iterable[dict],
    audio_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    fmt: str = "flac",
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    prefix: str = "shard",
    sample_rate: int | None = None,
    defaults: dict | None = None,
    overwrite: bool = False,
    allow_outside_root: bool = False,
    total: int | None = None,
    show_progress: bool = False,
) -> PackReport:
    """Pack manifest records (metadata + `audio` path relative to `audio_root`) into a new shard set.

    `defaults` fills top-level fields a record lacks (e.g. corpus, split). Refused inputs (and
    `RowProblem`s from `read_manifest`) are counted in the report's `skips`; nothing about them reaches
    a shard. Shards, index and skip list are written into a staging folder and published in one rename
    (`paralm.data.staging`), so `out_dir` never holds part of an unfinished pack. `overwrite` replaces a
    previous set and removes leftovers of killed runs. `total` (entries expected) feeds the progress line.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    out_dir, audio_root = Path(out_dir), Path(audio_root)
    check_out_dir(out_dir, overwrite)
    removed = remove_leftovers(out_dir) if overwrite else 0
    opts = {"audio_root": audio_root, "fmt": FORMATS[fmt], "sample_rate": sample_rate,
            "allow_outside_root": allow_outside_root}
    skips, rows, staging = SkipCounter(), _Rows(), new_staging(out_dir)
    try:
        with ShardWriter(staging, prefix=prefix, shard_bytes=shard_bytes) as writer:
            entries = progress(records, total=total, desc="pack", unit="rows", disable=not show_progress)
            for n, record in enumerate(entries, 1):
                _pack_one(record, n, defaults or {}, writer, skips, rows, opts)
            index = writer.close(skipped=skips.records)
        skips.write_skipped(staging / "pack_skipped.jsonl")
        publish(staging, out_dir)  # a previous set (checked above) is replaced whole
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    index.root = out_dir
    return PackReport(out_dir, index, skips, rows.notes, removed)



def sample_rate_arg(text: str) -> int:
    """--sample-rate: an integer rate in Hz within 8 kHz .. 96 kHz (what speech models and codecs use)."""
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of Hz (e.g. 16000)") from exc
    if not MIN_RATE <= value <= MAX_RATE:
        raise argparse.ArgumentTypeError(f"{value} Hz is outside {MIN_RATE}..{MAX_RATE} Hz (e.g. 16000)")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="paralm data pack", description="Pack audio + manifest into tar shards with an index."
    )
    p.add_argument("--manifest", default=None, help="manifest .jsonl or .csv (see paralm/data/manifest.py)")
    p.add_argument(
        "--audio-root", default=None, help="directory the manifest's `audio` paths are relative to"
    )
    add_foreign_arguments(p)  # --from-hf, --from-lhotse, --map (paralm/data/foreign/pack_foreign.py)
    p.add_argument("--out", required=True, help="output directory for shards and index.json")
    p.add_argument(
        "--format",
        default="flac",
        choices=sorted(FORMATS),
        help="audio codec in the shards: flac (lossless, default), wav (16-bit PCM: about twice "
        "the bytes, a quarter of the decoding time; for corpora read many times), ogg/opus (lossy)",
    )
    add_shard_size(p, DEFAULT_SHARD_BYTES)  # --shard-size (old spelling --shard-bytes: hidden alias)
    p.add_argument("--prefix", default="shard", help="shard file prefix: PREFIX-000000.tar")
    p.add_argument(
        "--sample-rate", type=sample_rate_arg, default=None,
        help=f"resample to this rate in Hz when packing, {MIN_RATE}..{MAX_RATE} (default: keep)",
    )
    p.add_argument("--corpus", default=None, help="corpus name for entries that do not give one")
    p.add_argument("--split", default=None, help="split for entries that do not give one")
    p.add_argument(
        "--overwrite", action="store_true",
        help="replace an existing shard set in --out and remove leftovers of killed runs (says how many)",
    )
    p.add_argument(
        "--allow-outside-root", action="store_true",
        help="pack audio paths that leave --audio-root (../, absolute, symlinks out); refused by default",
    )
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any input was refused")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    return p


def count_entries(path: str | os.PathLike) -> int | None:
    """Manifest entries (non-blank lines; CSV without its header) for the progress total; None if unreadable."""
    try:
        with open(path, "rb") as f:
            n = sum(1 for line in f if line.strip())
    except OSError:
        return None
    return max(n - 1, 0) if str(path).lower().endswith(".csv") else n


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_inputs(parser, args)
    if args.from_hf or args.from_lhotse:
        return main_foreign(args, pack)
    return report_exit("paralm data pack", lambda: _pack_manifest(args), args.strict,
                       (ManifestError, FileNotFoundError, FileExistsError, UserError))


def _pack_manifest(args: argparse.Namespace) -> PackReport:
    defaults = {k: v for k, v in (("corpus", args.corpus), ("split", args.split)) if v is not None}
    return pack(
        read_manifest(args.manifest),
        args.audio_root,
        args.out,
        fmt=args.format,
        shard_bytes=args.shard_bytes,
        prefix=args.prefix,
        sample_rate=args.sample_rate,
        defaults=defaults,
        overwrite=args.overwrite,
        allow_outside_root=args.allow_outside_root,
        total=count_entries(args.manifest),
        show_progress=not args.no_progress,
    )


if __name__ == "__main__":
    raise SystemExit(main())
