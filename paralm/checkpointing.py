"""Atomic, verifiable checkpoint files.

A checkpoint is written to a temporary file in the same folder, fsynced, renamed over the final name,
and then a completeness marker `<name>.ok` (JSON: size and sha256 of the final file) is written the same
way. A file without a matching marker is never loaded: a job killed mid-write leaves either the previous
complete checkpoint or a stray temporary file, never a half file under the final name. Files are loaded
with `torch.load(weights_only=True)`, so a checkpoint cannot run code.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import CheckpointIO

MARKER_SUFFIX = ".ok"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or corrupt; the message names the file and why."""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write bytes so that `path` holds either its old content or all of `data`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def marker_path(path: str | Path) -> Path:
    return Path(f"{path}{MARKER_SUFFIX}")


def save_verified(obj: Any, path: str | Path) -> str:
    """torch.save `obj` atomically and write its completeness marker; returns the sha256."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    marker = marker_path(path)
    if marker.exists():  # the old marker must not vouch for a new file while it is being replaced
        marker.unlink()
    atomic_write_bytes(path, data)
    atomic_write_bytes(marker, json.dumps({"size": len(data), "sha256": digest}).encode())
    return digest


def verify(path: str | Path) -> None:
    """Raise CheckpointError unless `path` exists, has its marker, and matches the marker's size and hash."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    marker = marker_path(path)
    if not marker.exists():
        raise CheckpointError(f"checkpoint {path} has no completeness marker {marker.name} (write interrupted?)")
    try:
        expected = json.loads(marker.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint marker {marker} is unreadable: {err}") from err
    data = path.read_bytes()
    if len(data) != expected.get("size"):
        raise CheckpointError(f"checkpoint {path} is {len(data)} bytes, marker says {expected.get('size')} (truncated?)")
    if hashlib.sha256(data).hexdigest() != expected.get("sha256"):
        raise CheckpointError(f"checkpoint {path} does not match its sha256 (corrupted bytes)")


def load_verified(path: str | Path, map_location: Any = "cpu") -> Any:
    """Verify, then load with weights_only=True (no code can run from the file)."""
    verify(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a verified file that still fails to unpickle is named, not hidden
        raise CheckpointError(f"checkpoint {path} failed to load with weights_only=True: {err}") from err


class AtomicCheckpointIO(CheckpointIO):
    """Lightning CheckpointIO plugin: atomic writes with markers, verified weights_only loads."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options: Any | None = None) -> None:
        save_verified(checkpoint, path)

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None) -> dict:
        return load_verified(path, map_location=map_location or "cpu")

    def remove_checkpoint(self, path) -> None:
        for p in (Path(path), marker_path(path)):
            if p.exists() or p.is_symlink():
                p.unlink()
