"""Add the `asks` field to every QA pair of a committed demo shard set that lacks it, without re-rendering.

Why: the committed shards (shards/general) were built before QA pairs recorded what they ask, so the scorers
had to tell the demo's DP items apart by the question-text fallback. Rebuilding them needs espeak-ng and SoX
(and gives new OGG serial numbers, so every audio byte would change). The field follows exactly from what
each pair already records: `generator.kind` -> `qa.ASKS[kind]`, the table build.py uses when it writes the
field itself. So this script patches only the `{key}.json` members: audio bytes, member order, names and tar
headers stay as they are (only the size field and checksum of a changed JSON member's header change), the
JSON keeps its key order and encoding, and `asks` sits where build.py puts it (before `generator`). The
index gets the new sha256/bytes of each shard and the new offsets/sizes of the members (the reader seeks by
them). The new set is written into a staging folder and published in one rename (paralm.data.staging).

    .venv/bin/python data/demo/record_asks.py [SHARDS_DIR]     (default: data/demo/shards/general)

A pair whose generator kind is missing or unknown stops the run (one line naming shard and key, exit 1)
before anything is written. A second run finds nothing to add and changes no byte.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

from qa import ASKS  # data/demo/qa.py: this script's folder is first on sys.path

from paralm.data.index import INDEX_NAME
from paralm.data.schema import dumps_strict
from paralm.data.staging import check_out_dir, new_staging, publish
from paralm.data.tario import BLOCK, TarTruncated, iter_members
from paralm.fault.exits import UserError

DEFAULT_DIR = Path(__file__).resolve().parent / "shards" / "general"


class CannotRecord(Exception):
    """A pair or member this script will not rewrite; the message names shard and key."""


def with_asks(raw: bytes, where: str) -> tuple[bytes, int]:
    """(new JSON bytes, pairs changed) for one `{key}.json` member; (raw, 0) when every pair has `asks`."""
    meta = json.loads(raw)
    if dumps_strict(meta) != raw:
        raise CannotRecord(f"{where}: JSON is not in the shard writer's encoding; rewriting it would change more")
    added = 0
    for i, pair in enumerate(meta.get("qa") or []):
        if "asks" in pair:
            continue
        kind = (pair.get("generator") or {}).get("kind")
        if kind not in ASKS:
            raise CannotRecord(f"{where}: qa[{i}] has generator kind {kind!r}; known kinds: {', '.join(ASKS)}")
        items = list(pair.items())
        at = next((j for j, (k, _) in enumerate(items) if k == "generator"), len(items))
        meta["qa"][i] = dict(items[:at] + [("asks", ASKS[kind])] + items[at:])
        added += 1
    return (dumps_strict(meta), added) if added else (raw, 0)


def _header_with_size(header: bytes, size: int) -> bytes:
    """The same ustar header with a new size field (same width) and its checksum recomputed."""
    block = bytearray(header)
    block[124:136] = b"%011o\0" % size
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    if tarfile.TarInfo.frombuf(bytes(block), "utf-8", "surrogateescape").size != size:
        raise CannotRecord("header size did not round-trip")
    return bytes(block)


def rewrite_shard(raw: bytes, shard: str) -> tuple[bytes, int]:
    """(new shard bytes, pairs changed): every byte copied except changed JSON members and their headers."""
    out, pos, added = bytearray(), 0, 0
    for m in iter_members(io.BytesIO(raw)):
        if not m.name.endswith(".json"):
            continue
        data, n = with_asks(m.data, f"{shard}/{m.name}")
        if not n:
            continue
        header = m.offset_data - BLOCK
        out += raw[pos:header] + _header_with_size(raw[header:m.offset_data], len(data))
        out += data + bytes(-len(data) % BLOCK)
        pos, added = m.offset_data + m.size + (-m.size % BLOCK), added + n  # past the old data + padding
    out += raw[pos:]
    old = [(m.name, m.data) for m in iter_members(io.BytesIO(raw)) if not m.name.endswith(".json")]
    new = [(m.name, m.data) for m in iter_members(io.BytesIO(bytes(out))) if not m.name.endswith(".json")]
    if old != new:
        raise CannotRecord(f"{shard}: audio members would change (a pax size record?); not rewritten")
    return bytes(out), added


def updated_index(index_raw: bytes, shards: dict[str, bytes]) -> bytes:
    """index.json with each rewritten shard's sha256/bytes and its samples' member offsets and sizes."""
    doc = json.loads(index_raw)
    if dumps_strict(doc) != index_raw:
        raise CannotRecord(f"{INDEX_NAME}: not in the index writer's encoding; rewriting it would change more")
    where = {}
    for name, data in shards.items():
        where.update({(name, m.name): m for m in iter_members(io.BytesIO(data))})
    for row in doc["shards"]:
        if row["path"] in shards:
            row["sha256"] = hashlib.sha256(shards[row["path"]]).hexdigest()
            row["bytes"] = len(shards[row["path"]])
    for row in doc["samples"]:
        if row["shard"] in shards:
            audio, meta = where[row["shard"], row["audio_member"]], where[row["shard"], f"{row['key']}.json"]
            row["audio_offset"], row["audio_size"] = audio.offset_data, audio.size
            row["json_offset"], row["json_size"] = meta.offset_data, meta.size
    return dumps_strict(doc)


def record(folder: Path) -> int:
    """Rewrite the set in `folder`; returns how many pairs got `asks` (0: nothing written)."""
    index_raw = (folder / INDEX_NAME).read_bytes()
    changed, added = {}, 0
    for row in json.loads(index_raw)["shards"]:
        data, n = rewrite_shard((folder / row["path"]).read_bytes(), row["path"])
        if n:
            changed[row["path"]], added = data, added + n
    if not added:
        return 0
    check_out_dir(folder, overwrite=True)
    staging = new_staging(folder)
    try:
        for path in sorted(folder.iterdir()):
            shutil.copy2(path, staging / path.name)
        for name, data in changed.items():
            (staging / name).write_bytes(data)
        (staging / INDEX_NAME).write_bytes(updated_index(index_raw, changed))
        publish(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(f"record_asks: added `asks` to {added} qa pair(s) in {len(changed)} shard(s) of {folder}; index updated")
    return added


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else DEFAULT_DIR
    try:
        if not (folder / INDEX_NAME).is_file():
            raise CannotRecord(f"{folder}: no {INDEX_NAME}; give a shard set folder")
        if not record(folder):
            print(f"record_asks: every qa pair in {folder} already records `asks`; nothing to do")
    except (CannotRecord, TarTruncated, UserError, ValueError, OSError) as exc:
        print(f"record_asks: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
