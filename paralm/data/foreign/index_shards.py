"""`paralm data index SHARDS... --out DIR`: make existing tar shards usable without rewriting them.

Shards written by `webdataset.ShardWriter`, GNU `tar` or another pipeline have no shard index, and the
planned loader, `data inspect`, `data vad` and `fit` need one. This command scans every member group,
decodes its audio (so `duration` is measured, and a corrupt clip is refused now instead of mid-run),
builds schema metadata with a field map (paralm/data/foreign/field_map.py), validates it, and writes
`DIR/index.json` with the same skip reasons and `pack_skipped.jsonl` as `paralm data pack`.

The audio stays where it is: index rows point at the original members, and since paths in an index never
leave its folder, `DIR` is the shard folder (or a folder above the shards). Metadata stays in the shards
too when the shard's own `{key}.json` already is the final metadata; otherwise (no JSON member, fields
mapped, duration measured) it is written once into a sidecar tar `index.meta` in the shard's folder (not
named `*.tar`, so no reader takes it for a shard) and the row points there (`IndexRow.json_shard`).

Refused: `pipe:` and URLs (indexed reading seeks in local files), and a folder that is being written (a
`.NAME.partial-PID` shard or a `.NAME.staging-PID` folder present, see paralm/data/staging.py) unless
`--allow-in-progress`: an index of a half-written set would point at shards that change under it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
from braceexpand import braceexpand

from paralm.data.command_exit import report_exit
from paralm.data.foreign.field_map import FieldMap, MapError, load_map
from paralm.data.foreign.tar_groups import MemberGroup, iter_groups
from paralm.data.index import INDEX_NAME, IndexRow, ShardIndex, ShardRow
from paralm.data.reader import DecodeOptions, SkipSample, check_member_name, decode_audio
from paralm.data.schema import SchemaError, loads_strict, validate_sample
from paralm.data.skips import SkipCounter, SkipRecord
from paralm.data.staging import is_leftover, leftovers
from paralm.data.tario import TarWriter, sha256_file
from paralm.fault.exits import EXIT_NOTHING_USABLE, FaultExit, UserError
from paralm.progress import progress

SIDECAR_NAME = "index.meta"
SKIPPED_NAME = "pack_skipped.jsonl"
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_\-+=@,:~]")


# --- inputs ---------------------------------------------------------------------------------------
def expand_inputs(specs: list[str]) -> list[Path]:
    """Shard paths from folders (every *.tar), brace patterns and plain paths; URLs and `pipe:` refused."""
    paths: list[Path] = []
    for spec in specs:
        if spec.startswith("pipe:") or "://" in spec:
            raise UserError(f"refusing {spec!r}: an index points into local files; copy the shards here first")
        if Path(spec).is_dir():
            found = sorted(p for p in Path(spec).glob("*.tar") if not is_leftover(p.name))
            if not found:
                raise UserError(f"no .tar shards in folder {spec}")
            paths += found
            continue
        for url in braceexpand(spec):
            if not Path(url).is_file():
                raise UserError(f"shard {url} does not exist")
            paths.append(Path(url))
    unique = list(dict.fromkeys(p.resolve() for p in paths))
    if len(unique) != len(paths):
        raise UserError("the same shard is named more than once")
    return unique


def check_published(paths: list[Path]) -> None:
    """Refuse shards of a folder that a writer is still filling (leftover partial shards or staging folders)."""
    for folder in sorted({p.parent for p in paths}):
        if is_leftover(folder.name):
            raise UserError(f"{folder} is a writer's staging folder, not a published shard set; index the "
                            "set it is renamed to (or pass --allow-in-progress)")
        busy = leftovers(folder)
        if busy:
            raise UserError(f"{folder} is being written ({busy[0].name} present): index it once the writer "
                            "has finished, or pass --allow-in-progress")


# --- one member group -> metadata ---------------------------------------------------------------
def group_record(group: MemberGroup) -> tuple[dict, dict | None]:
    """(record the map reads, the JSON member's object or None): text members by extension, JSON parsed."""
    record: dict = {}
    base = None
    for ext, member in group.members.items():
        if ext == "json":
            try:  # strictly, as the reader will: NaN, Infinity, lone surrogates are bad_json here too
                record["json"] = loads_strict(member.data)
            except ValueError as exc:  # JSONDecodeError and StrictJSONError
                raise SkipSample("bad_json", f"{member.name}: {exc}") from exc
            base = record["json"] if isinstance(record["json"], dict) else None
            continue
        try:
            record[ext] = member.data.decode("utf-8").strip()
        except UnicodeDecodeError:
            record[ext] = member.data  # binary (audio or anything else): reachable only as bytes
    return record, base


def measure_duration(data: bytes) -> float:
    """Seconds of audio in `data`, decoded in full (corrupt, non-finite and empty audio raise SkipSample)."""
    try:
        rate = sf.info(io.BytesIO(data)).samplerate
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, EOFError):
        rate = 16000  # decode_audio below raises the corrupt_audio skip with libsndfile's reason
    wav = decode_audio(data, DecodeOptions(sample_rate=rate))
    return round(len(wav) / rate, 6)


def group_meta(group: MemberGroup, fmap: FieldMap, shard_name: str) -> tuple[dict, str, dict | None]:
    """(validated metadata, audio member name, the JSON member's object) for one group; raises SkipSample."""
    for member in group.members.values():
        check_member_name(member.name)
    audio_ext = next((ext for ext in fmap.audio if ext in group.members), None)
    if audio_ext is None:
        raise SkipSample("missing_member", f"no audio member (.{', .'.join(fmap.audio)}) among "
                                           f"{sorted(group.members)}")
    record, base = group_record(group)
    meta = fmap.apply(record, base, name=shard_name)
    meta.setdefault("key", _KEY_UNSAFE.sub("_", group.key.rsplit("/", 1)[-1]))
    meta.setdefault("transcript", "")
    meta["duration"] = measure_duration(group.members[audio_ext].data)
    try:
        validate_sample(meta)
        json.dumps(meta, allow_nan=False)
    except (SchemaError, ValueError) as exc:
        raise SkipSample("schema", str(exc)) from exc
    return meta, group.members[audio_ext].name, base


# --- the index ----------------------------------------------------------------------------------
@dataclass
class IndexReport:
    """What an index run produced: the index, samples whose metadata went to the sidecar, and the skips."""

    out_dir: Path
    index: ShardIndex
    sidecar: int = 0
    skips: SkipCounter = field(default_factory=SkipCounter)

    def summary(self) -> str:
        n = len(self.index.samples)
        lines = [f"indexed {n} samples ({self.index.total_duration / 3600:.2f} h) in {len(self.index.shards)} shard(s) "
                 f"into {self.out_dir / INDEX_NAME}; metadata: {n - self.sidecar} from the shards' JSON, "
                 f"{self.sidecar} mapped into {SIDECAR_NAME}"]
        if self.skips.total:
            lines.append(f"refused {self.skips.total} sample(s): {self.skips.nonzero()} (listed in {SKIPPED_NAME})")
            lines += [f"  {r.key}: {r.reason} ({r.detail})" for r in self.skips.records[:20]]
        return "\n".join(lines)


class _Sidecars:
    """One metadata tar per shard folder (`index.meta`), opened only when a sample of that folder needs it.

    It is written under a temporary name and renamed into place when the index is complete (TarWriter), so
    an interrupted run leaves no sidecar that a previous index.json does not describe.
    """

    def __init__(self) -> None:
        self.writers: dict[Path, TarWriter] = {}
        self.count = 0

    def add(self, folder: Path, key: str, meta: dict) -> tuple[int, int]:
        if folder not in self.writers:
            self.writers[folder] = TarWriter(folder / SIDECAR_NAME)
        data = json.dumps(meta, ensure_ascii=False, allow_nan=False).encode("utf-8")
        self.count += 1
        return self.writers[folder].add(f"{key}.json", data), len(data)

    def close(self, folders: set[Path]) -> None:
        for writer in self.writers.values():
            writer.close()
        for folder in folders - set(self.writers):
            (folder / SIDECAR_NAME).unlink(missing_ok=True)  # a previous index's sidecar, no longer used

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()


def _index_shard(path: Path, out: Path, fmap: FieldMap, sidecars: _Sidecars, seen: set[str], skips: SkipCounter):
    """Rows of one shard (audio where it is; metadata in the shard or the sidecar) and its ShardRow."""
    rel = Path(os.path.relpath(path, out.resolve())).as_posix()
    rows = []
    with open(path, "rb") as f:
        for item in iter_groups(f, rel):
            if isinstance(item, SkipRecord):
                skips.add_record(item)
                continue
            try:
                meta, audio_name, base = group_meta(item, fmap, path.name)
                if meta["key"] in seen:
                    raise SkipSample("duplicate_key", f"key {meta['key']!r} already indexed in this set")
            except SkipSample as exc:
                skips.add(exc.reason, item.key, rel, exc.detail)
                continue
            seen.add(meta["key"])
            rows.append(_row(item, meta, audio_name, base, rel, path.parent, sidecars))
            skips.deliver()
    duration = round(sum(r.duration for r in rows), 6)
    return rows, ShardRow(rel, len(rows), duration, sha256_file(path), path.stat().st_size)


def _row(group: MemberGroup, meta: dict, audio_name: str, base: dict | None, rel: str, folder: Path,
         sidecars: _Sidecars) -> IndexRow:
    audio = next(m for m in group.members.values() if m.name == audio_name)
    own = group.members.get("json")
    if base is not None and base == meta and own is not None and own.name == f"{meta['key']}.json":
        return IndexRow.from_meta(meta, rel, audio_name, (audio.offset_data, audio.size, own.offset_data, own.size))
    json_offset, json_size = sidecars.add(folder, meta["key"], meta)
    row = IndexRow.from_meta(meta, rel, audio_name, (audio.offset_data, audio.size, json_offset, json_size))
    row.json_shard = SIDECAR_NAME
    return row


def check_inside(paths: list[Path], out: Path) -> None:
    """Paths in an index never leave its folder, so `out` must hold every shard."""
    root = out.resolve()
    outside = [p for p in paths if not p.resolve().is_relative_to(root)]
    if outside:
        raise UserError(f"{outside[0]} is not inside --out {out}: an index sits in the shard folder (or a "
                        "folder above the shards), since its paths never leave its folder")


def index_shards(paths: list[Path], out: str | os.PathLike, fmap: FieldMap | None = None,
                 overwrite: bool = False) -> IndexReport:
    """Index `paths` into `out/index.json` (see the module docstring); refused samples are counted."""
    out = Path(out)
    check_inside(paths, out)
    if (out / INDEX_NAME).exists() and not overwrite:
        raise UserError(f"{out} already holds {INDEX_NAME}; pass --overwrite to replace it")
    fmap = fmap or FieldMap()
    skips, seen, sidecars = SkipCounter(), set(), _Sidecars()
    index = ShardIndex(root=out)
    try:
        for path in progress(paths, total=len(paths), desc="index shards", unit="shards"):
            rows, shard_row = _index_shard(path, out, fmap.with_defaults(corpus=path.parent.name), sidecars,
                                           seen, skips)
            index.samples.extend(rows)
            index.shards.append(shard_row)
    except BaseException:
        sidecars.abort()
        raise
    skips.write_skipped(out / SKIPPED_NAME)
    if not index.samples:  # nothing usable: no index that would look like an (empty) shard set
        sidecars.abort()
        return IndexReport(out, index, 0, skips)
    sidecars.close({p.parent for p in paths})
    index.pack_skipped = list(skips.records)
    index.save()
    return IndexReport(out, index, sidecars.count, skips)


# --- command ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="paralm data index",
        description="Index existing tar shards (webdataset.ShardWriter, GNU tar, ...) so the planned loader, "
        "inspect, vad and fit can read them; audio stays where it is.",
    )
    p.add_argument("shards", nargs="+", help="shard files, folders (every *.tar) or brace patterns "
                   "such as shards/train-{000000..000099}.tar")
    p.add_argument("--out", required=True, help="folder for index.json and pack_skipped.jsonl: the shard folder "
                   "itself or a folder above the shards (mapped metadata goes to index.meta beside each shard)")
    p.add_argument("--map", default=None, help="YAML field map: foreign member names -> schema fields "
                   "(see README 'Making data from your own corpus')")
    p.add_argument("--corpus", default=None, help="corpus name where the map does not give one (default: the "
                   "shard folder's name)")
    p.add_argument("--split", default=None, help="split for samples whose metadata and map give none")
    p.add_argument("--overwrite", action="store_true", help="replace an existing index.json in --out")
    p.add_argument("--allow-in-progress", action="store_true", help="index even though a writer's leftovers "
                   "(.NAME.partial-PID, .NAME.staging-PID) show the folder is being written")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any sample was refused")
    return p


def run(args: argparse.Namespace) -> IndexReport:
    fmap = load_map(args.map).with_defaults(corpus=args.corpus, split=args.split)
    paths = expand_inputs(args.shards)
    if not args.allow_in_progress:
        check_published(paths)
    report = index_shards(paths, args.out, fmap, overwrite=args.overwrite)
    if not report.index.samples:
        raise FaultExit(f"no usable sample in {len(paths)} shard(s): {report.skips.nonzero()} "
                        f"(see {Path(args.out) / SKIPPED_NAME}); a --map may be needed", EXIT_NOTHING_USABLE)
    return report


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return report_exit("paralm data index", lambda: run(args), args.strict, (UserError, MapError))


if __name__ == "__main__":
    raise SystemExit(main())
