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
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from paralm.data.index import INDEX_NAME, ShardIndex
from paralm.data.manifest import ManifestError, read_manifest
from paralm.data.reader import SkipSample
from paralm.data.schema import SchemaError
from paralm.data.shards import DEFAULT_SHARD_BYTES, DuplicateKeyError, ShardWriter
from paralm.data.skips import SkipCounter

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
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
    """What a pack produced: the index, how many samples went in, and what was refused and why."""

    out_dir: Path
    index: ShardIndex
    skips: SkipCounter = field(default_factory=SkipCounter)

    @property
    def packed(self) -> int:
        return len(self.index.samples)

    def summary(self) -> str:
        hours = self.index.total_duration / 3600
        lines = [
            f"packed {self.packed} samples ({hours:.2f} h) into {len(self.index.shards)} shard(s) in {self.out_dir}"
        ]
        if self.skips.total:
            lines.append(f"refused {self.skips.total} input(s): {self.skips.nonzero()}")
            lines += [f"  {r.key}: {r.reason} ({r.detail})" for r in self.skips.records[:20]]
        return "\n".join(lines)


def load_audio(path: Path) -> tuple[np.ndarray, int, str]:
    """Decode one input file -> ((n,) float32 mono, sample rate, source subtype); raises SkipSample."""
    if not path.is_file():
        raise SkipSample("missing_member", f"audio file not found: {path}")
    try:
        info = sf.info(str(path))
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, EOFError) as exc:
        raise SkipSample("corrupt_audio", str(exc)) from exc
    if not np.isfinite(wav).all():
        raise SkipSample(
            "non_finite_audio", f"{int((~np.isfinite(wav)).sum())} NaN/inf values in {path.name}"
        )
    if wav.shape[0] == 0:
        raise SkipSample("too_short", f"{path.name} has no samples")
    return wav.mean(axis=1).astype(np.float32), sr, info.subtype


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


def _prepare(record: dict, audio_root: Path, fmt: AudioFormat, sample_rate: int | None) -> tuple[dict, bytes]:
    wav, sr, subtype = load_audio(audio_root / record["audio"])
    if sample_rate is not None and sr != sample_rate:
        wav, sr = soxr.resample(wav, sr, sample_rate).astype(np.float32), sample_rate
    data, sr = encode_audio(wav, sr, fmt, subtype)
    meta = {k: v for k, v in record.items() if k != "audio"}
    meta["duration"] = round(len(wav) / sr, 6)
    return meta, data


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
) -> PackReport:
    """Pack manifest records (metadata + `audio` path relative to `audio_root`) into a new shard set.

    `defaults` fills top-level fields a record lacks (e.g. corpus, split). Refused inputs are counted
    in the report's `skips`; nothing about them reaches a shard.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    out_dir, audio_root = Path(out_dir), Path(audio_root)
    if overwrite:
        _remove_set(out_dir, prefix)
    skips, seen = SkipCounter(), set()
    with ShardWriter(out_dir, prefix=prefix, shard_bytes=shard_bytes) as writer:
        for record in records:
            record = {**(defaults or {}), **record}
            key = str(record.get("key", ""))
            try:
                if key in seen:
                    raise DuplicateKeyError(f"key {key!r} appears more than once in the manifest")
                seen.add(key)
                meta, data = _prepare(record, audio_root, FORMATS[fmt], sample_rate)
                writer.add(meta, data, FORMATS[fmt].ext)
            except SkipSample as exc:
                skips.add(exc.reason, key, str(record.get("audio", "")), exc.detail)
                continue
            except DuplicateKeyError as exc:
                skips.add("duplicate_key", key, str(record.get("audio", "")), str(exc))
                continue
            except SchemaError as exc:
                skips.add("schema", key, str(record.get("audio", "")), str(exc))
                continue
            skips.deliver()
        index = writer.close(skipped=skips.records)
    skips.write_skipped(out_dir / "pack_skipped.jsonl")
    return PackReport(out_dir, index, skips)


def _remove_set(out_dir: Path, prefix: str) -> None:
    """Delete a previous set's index and `{prefix}-*.tar` shards (and only those)."""
    (out_dir / INDEX_NAME).unlink(missing_ok=True)
    for shard in out_dir.glob(f"{prefix}-*.tar"):
        shard.unlink()


def parse_bytes(text: str) -> int:
    """ "256M", "1G", "500k" or a plain number of bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().removesuffix("b") or "?"
    scale = units.get(text[-1], 1)
    number = text[:-1] if text[-1] in units else text
    try:
        value = int(float(number) * scale)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 256M, 1G, 1000000)") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="paralm data pack", description="Pack audio + manifest into tar shards with an index."
    )
    p.add_argument("--manifest", required=True, help="manifest .jsonl or .csv (see paralm/data/manifest.py)")
    p.add_argument(
        "--audio-root", required=True, help="directory the manifest's `audio` paths are relative to"
    )
    p.add_argument("--out", required=True, help="output directory for shards and index.json")
    p.add_argument(
        "--format",
        default="flac",
        choices=sorted(FORMATS),
        help="audio codec in the shards: flac (lossless, default), wav (16-bit PCM: about twice "
        "the bytes, a quarter of the decoding time; for corpora read many times), ogg/opus (lossy)",
    )
    p.add_argument(
        "--shard-bytes", type=parse_bytes, default=DEFAULT_SHARD_BYTES, help="target shard size (e.g. 256M)"
    )
    p.add_argument("--prefix", default="shard", help="shard file prefix: PREFIX-000000.tar")
    p.add_argument(
        "--sample-rate", type=int, default=None, help="resample to this rate when packing (default: keep)"
    )
    p.add_argument("--corpus", default=None, help="corpus name for entries that do not give one")
    p.add_argument("--split", default=None, help="split for entries that do not give one")
    p.add_argument("--overwrite", action="store_true", help="replace an existing shard set in --out")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any input was refused")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    defaults = {k: v for k, v in (("corpus", args.corpus), ("split", args.split)) if v is not None}
    try:
        report = pack(
            read_manifest(args.manifest),
            args.audio_root,
            args.out,
            fmt=args.format,
            shard_bytes=args.shard_bytes,
            prefix=args.prefix,
            sample_rate=args.sample_rate,
            defaults=defaults,
            overwrite=args.overwrite,
        )
    except (ManifestError, FileNotFoundError, FileExistsError) as exc:
        print(f"paralm data pack: error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 1 if args.strict and report.skips.total else 0


if __name__ == "__main__":
    raise SystemExit(main())
