"""Read an offline W&B run file back (for tests): the history rows that were logged.

The `.wandb` file is a log of protobuf `Record`s in 32 KiB blocks (header 7 bytes `:W&B` + magic +
version; per chunk: 4-byte checksum, 2-byte little-endian length, 1-byte type FULL/FIRST/MIDDLE/LAST).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768
HEADER = 7


def records(path: str | Path):
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(pending)
            yield rec
            pending = b""


def history(path: str | Path) -> list[dict]:
    rows = []
    for rec in records(path):
        if rec.WhichOneof("record_type") == "history":
            rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item})
    return rows


def run_file(wandb_dir: str | Path) -> Path:
    runs = sorted(Path(wandb_dir).glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1, f"expected one offline run in {wandb_dir}, found {runs}"
    return runs[0]
