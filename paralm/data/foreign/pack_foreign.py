"""`paralm data pack --from-hf PATH | --from-lhotse MANIFEST...`: the foreign entry points of `data pack`.

Both turn their input into manifest-like records whose audio is written, one clip at a time, to a
temporary folder, and hand them to `paralm.data.pack.pack`, so a Hugging Face dataset or a Lhotse
manifest is packed, validated, refused and counted exactly as loose files with a manifest are (same skip
reasons, `pack_skipped.jsonl`, staging folder published in one rename).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paralm.data.command_exit import report_exit
from paralm.data.foreign.field_map import MapError, load_map
from paralm.fault.exits import EXIT_NOTHING_USABLE, FaultExit, UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The foreign-input options of `paralm data pack`."""
    p.add_argument("--from-hf", default=None, metavar="PATH", help="a local Hugging Face dataset with an Audio "
                   "column (save_to_disk folder, or a parquet/arrow/csv/json folder); needs paralm[hf]")
    p.add_argument("--from-lhotse", nargs="+", default=None, metavar="MANIFEST", help="a Lhotse CutSet manifest, "
                   "or a RecordingSet (+ SupervisionSet) manifest; needs paralm[lhotse]")
    p.add_argument("--map", default=None, help="with --from-hf / --from-lhotse: YAML field map, columns or cut "
                   "fields -> schema fields (README 'Making data from your own corpus')")


def check_inputs(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exactly one input: --manifest (with --audio-root), --from-hf or --from-lhotse."""
    given = [name for name in ("manifest", "from_hf", "from_lhotse") if getattr(args, name)]
    if len(given) != 1:
        p.error("give exactly one input: --manifest (with --audio-root), --from-hf PATH or --from-lhotse MANIFEST")
    if args.manifest and not args.audio_root:
        p.error("--manifest needs --audio-root (the folder its `audio` paths are relative to)")
    if args.map and args.manifest:
        p.error("--map applies to --from-hf / --from-lhotse; a manifest is already in the schema layout")


def records(args: argparse.Namespace, work: Path):
    fmap = load_map(args.map).with_defaults(corpus=args.corpus, split=args.split)
    if args.from_hf:
        from paralm.data.foreign.from_hf import hf_records

        return hf_records(args.from_hf, fmap, work)
    from paralm.data.foreign.from_lhotse import lhotse_records

    return lhotse_records(args.from_lhotse, fmap, work)


def main_foreign(args: argparse.Namespace, pack: Callable[..., Any]) -> int:
    """Pack a foreign input (see the module docstring) with `paralm.data.pack.pack`, handed in by the caller
    so this module need not import pack.py (which imports it); exit codes as `paralm data pack`."""
    return report_exit("paralm data pack", lambda: _pack_foreign(args, pack), args.strict,
                       (UserError, MapError, FileNotFoundError, FileExistsError))


def _pack_foreign(args: argparse.Namespace, pack: Callable[..., Any]):
    with tempfile.TemporaryDirectory(prefix="paralm-pack-") as work:
        report = pack(records(args, Path(work)), work, args.out, fmt=args.format, shard_bytes=args.shard_bytes,
                      prefix=args.prefix, sample_rate=args.sample_rate, overwrite=args.overwrite,
                      show_progress=not args.no_progress)
    if not report.packed:
        raise FaultExit(f"nothing packed: {report.skips.nonzero()} (see {Path(args.out) / 'pack_skipped.jsonl'}); "
                        "a --map may be needed", EXIT_NOTHING_USABLE)
    return report
