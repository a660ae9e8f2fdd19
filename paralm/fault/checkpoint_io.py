"""Atomic, verifiable checkpoint files.

A checkpoint is written to a temporary file in the same folder, fsynced, renamed over the final name,
and then a completeness marker `<name>.ok` (JSON: size and sha256 of the final file) is written the same
way. A file without a matching marker is never loaded: a job killed mid-write leaves either the previous
complete checkpoint or a stray temporary file, never a half file under the final name. Files are loaded
with `torch.load(weights_only=True)`, so a checkpoint cannot run code.

The marker also records the global step, so `--resume auto` (paralm/fault/resume.py) can order
checkpoints without loading them. Before anything is written, weights and optimiser state are checked
for NaN/inf: a diverged state is refused (exit code 4) and the previous checkpoints stay the newest.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import CheckpointIO

from paralm.atomic_files import atomic_write_bytes  # a module global: fault tests patch it here
from paralm.fault.exits import EXIT_NONFINITE_HALT, EXIT_RESUME_FAILED, FaultExit

MARKER_SUFFIX = ".ok"
CHECKED_FOR_FINITE = ("state_dict", "optimizer_states")  # what a diverged run would poison


class CheckpointError(FaultExit):
    """A checkpoint is missing, incomplete or corrupt; the message names the file and why."""

    exit_code = EXIT_RESUME_FAILED


class NonFiniteCheckpointError(CheckpointError):
    """Refused to write a checkpoint holding NaN/inf weights or optimiser state."""

    exit_code = EXIT_NONFINITE_HALT


def marker_path(path: str | Path) -> Path:
    return Path(f"{path}{MARKER_SUFFIX}")


def first_nonfinite(obj: Any, where: str = "") -> str | None:
    """Dotted path of the first floating tensor holding NaN/inf inside nested dicts/lists, or None."""
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() or obj.is_complex():
            return None if bool(torch.isfinite(obj).all()) else where or "<tensor>"
        return None
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return None
    for key, value in items:
        found = first_nonfinite(value, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def save_verified(obj: Any, path: str | Path) -> str:
    """torch.save `obj` atomically and write its completeness marker; returns the sha256.

    Refuses (NonFiniteCheckpointError) when weights or optimiser state hold NaN/inf; nothing is written.
    """
    if isinstance(obj, dict):
        bad = first_nonfinite({k: obj[k] for k in CHECKED_FOR_FINITE if k in obj})
        if bad is not None:
            raise NonFiniteCheckpointError(f"refusing to write checkpoint {path}: non-finite values in {bad}; "
                                           "the previous checkpoints are kept")
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    marker = marker_path(path)
    if marker.exists():  # the old marker must not vouch for a new file while it is being replaced
        marker.unlink()
    atomic_write_bytes(path, data)
    record = {"size": len(data), "sha256": digest}
    if isinstance(obj, dict):
        record.update({k: obj[k] for k in ("global_step", "epoch") if isinstance(obj.get(k), int)})
    atomic_write_bytes(marker, json.dumps(record).encode())
    return digest


def verified_bytes(path: str | Path) -> bytes:
    """The file's bytes, once they match the marker's size and sha256; raises CheckpointError otherwise.

    Returning the checked bytes (rather than re-reading the file to load it) means what is loaded is
    exactly what was checked, even if the file is replaced in between.
    """
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
    if not isinstance(expected, dict):
        raise CheckpointError(f"checkpoint marker {marker} is not a JSON object")
    data = path.read_bytes()
    if len(data) != expected.get("size"):
        raise CheckpointError(f"checkpoint {path} is {len(data)} bytes, marker says {expected.get('size')} (truncated?)")
    if hashlib.sha256(data).hexdigest() != expected.get("sha256"):
        raise CheckpointError(f"checkpoint {path} does not match its sha256 (corrupted bytes)")
    return data


def verify(path: str | Path) -> None:
    """Raise CheckpointError unless `path` exists, has its marker, and matches the marker's size and hash."""
    verified_bytes(path)


def checkpoint_step(path: str | Path) -> int:
    """The global step a checkpoint was written at: from its marker (written with the file, so no need to
    read gigabytes), else from the verified file itself."""
    try:
        step = json.loads(marker_path(path).read_text()).get("global_step")
    except (OSError, ValueError, AttributeError):
        step = None
    if isinstance(step, int) and step >= 0:
        return step
    state = load_verified(path)
    step = state.get("global_step") if isinstance(state, dict) else None
    if not isinstance(step, int):
        raise CheckpointError(f"checkpoint {path} records no global step")
    return step


def load_verified(path: str | Path, map_location: Any = "cpu") -> Any:
    """Verify, then load the verified bytes with weights_only=True (no code can run from the file)."""
    data = verified_bytes(path)
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
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
