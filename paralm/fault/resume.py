"""Which checkpoint a run resumes from: `--resume auto | auto_or_new | none | PATH`.

A resume must never quietly become a fresh start, and must never load a half-written or damaged file.
`auto` scans the checkpoint folders, orders the files by the global step their completeness marker
records (then by modification time), verifies them newest first (marker, size, sha256) and takes the
first that passes, naming every newer file it passed over and why. Nothing usable: exit code 3.

| mode          | no checkpoint files at all | files, none valid | a valid one            |
|---------------|----------------------------|-------------------|------------------------|
| none          | fresh start                | fresh start       | fresh start            |
| auto          | exit 3                     | exit 3            | resume from the newest |
| auto_or_new   | fresh start, said loudly   | exit 3            | resume from the newest |
| PATH          | exit 3 unless PATH is valid (a damaged PATH is never swapped for another file) |

`auto_or_new` is for job scripts that are requeued: the first launch starts fresh, every later one
resumes, and damaged checkpoints still stop the job instead of silently restarting it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from paralm.fault.checkpoint_io import CheckpointError, marker_path, verify
from paralm.fault.exits import EXIT_RESUME_FAILED, FaultExit

log = logging.getLogger(__name__)
CKPT_SUFFIX = ".ckpt"


class ResumeError(FaultExit):
    """Asked to resume, but no usable checkpoint; the message names the files looked at and why."""

    exit_code = EXIT_RESUME_FAILED


@dataclass
class Selection:
    """The outcome of a scan: the chosen file (or None), the files passed over with reasons, stray temp files."""

    path: Path | None = None
    rejected: list[tuple[Path, str]] = field(default_factory=list)
    stray: list[Path] = field(default_factory=list)
    scanned: int = 0

    def explain(self) -> str:
        lines = [f"resuming from {self.path}" if self.path else "no usable checkpoint"]
        lines += [f"  passed over {p}: {why}" for p, why in self.rejected]
        if self.stray:
            lines.append(f"  ignored {len(self.stray)} temporary file(s) left by interrupted writes: "
                         + ", ".join(p.name for p in self.stray[:5]))
        return "\n".join(lines)


def _recorded_step(path: Path) -> int | None:
    """The global step the marker records, or None when the marker is missing or unreadable."""
    try:
        return int(json.loads(marker_path(path).read_text()).get("global_step", -1))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def scan(folders: Iterable[str | Path]) -> Selection:
    """Verify the checkpoints under `folders` newest first; see the module docstring for the order."""
    files: dict[Path, None] = {}
    selection = Selection()
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if p.name.startswith(".") and ".tmp-" in p.name:
                selection.stray.append(p)
            elif p.name.endswith(CKPT_SUFFIX) and (p.is_file() or p.is_symlink()):
                files[p.resolve() if p.is_symlink() else p] = None
    selection.scanned = len(files)
    marked, unmarked = [], []
    for p in files:
        step = _recorded_step(p)
        (unmarked if step is None else marked).append((step, _mtime(p), p))
    for _, _, p in unmarked:
        selection.rejected.append((p, _reason(p)))
    for _, _, p in sorted(marked, key=lambda t: (t[0], t[1]), reverse=True):
        try:
            verify(p)
        except CheckpointError as err:
            selection.rejected.append((p, str(err)))
            continue
        selection.path = p
        break
    return selection


def _mtime(p: Path) -> int:
    try:
        return p.stat().st_mtime_ns
    except OSError:
        return 0


def _reason(p: Path) -> str:
    try:
        verify(p)
    except CheckpointError as err:
        return str(err)
    return "marker does not record a global step"


def _auto(folders: list[Path], allow_new: bool) -> str | None:
    if not folders:
        raise ResumeError("--resume auto: no checkpoint folder is known; set a ModelCheckpoint dirpath or "
                          "pass --resume_dir")
    selection = scan(folders)
    where = ", ".join(map(str, folders))
    if selection.path is not None:
        log.warning("%s", selection.explain())
        return str(selection.path)
    if selection.scanned == 0 and allow_new:
        log.warning("--resume auto_or_new: no checkpoint in %s; starting a new run", where)
        return None
    raise ResumeError(f"--resume: no usable checkpoint in {where} ({selection.scanned} file(s) checked); "
                      f"refusing to start from scratch.\n{selection.explain()}")


def _path(value: str) -> str:
    return verified_option_path(value, "--resume")


# ckpt_path words Lightning resolves itself (through the checkpoint plugin, which verifies what it loads)
LIGHTNING_CKPT_WORDS = ("last", "best", "hpc", "registry")


def verified_option_path(value: str, option: str) -> str:
    """`value` if it is a complete, marked checkpoint; else ResumeError (exit 3) naming the option and why.

    One rule for `--resume PATH` and `--ckpt_path PATH`: nothing reads a checkpoint file (not even
    Lightning's CLI, which loads `--ckpt_path` to merge its hyper_parameters) before its marker checks out.
    """
    try:
        verify(value)
    except CheckpointError as err:
        raise ResumeError(f"{option} {value}: {err}; refusing to substitute another file or load it "
                          "(use --resume auto to take the newest valid checkpoint)") from err
    return value


MODES = {
    "none": lambda folders: None,
    "auto": lambda folders: _auto(folders, allow_new=False),
    "auto_or_new": lambda folders: _auto(folders, allow_new=True),
}


def resolve_resume(mode: str, folders: Iterable[str | Path]) -> str | None:
    """The checkpoint path to pass as ckpt_path (None: start fresh); raises ResumeError (exit 3)."""
    mode = (mode or "none").strip()
    if mode in MODES:
        return MODES[mode]([Path(f) for f in dict.fromkeys(str(f) for f in folders)])
    if mode.endswith(CKPT_SUFFIX) or "/" in mode or Path(mode).exists():
        return _path(mode)
    raise ResumeError(f"--resume {mode!r}: not a mode or a checkpoint path; valid: {', '.join(MODES)} or a "
                      f"path to a {CKPT_SUFFIX} file")


def checkpoint_folders(trainer, explicit: str | None = None) -> list[str]:
    """Where a run's checkpoints land: `explicit` if given, else every ModelCheckpoint dirpath, the folder
    of any callback exposing `resume_dirpath` (the preemption checkpoint), and <default_root_dir>/checkpoints."""
    if explicit:
        return [explicit]
    folders = [str(cb.dirpath) for cb in trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)]
    folders += [str(cb.resume_dirpath) for cb in trainer.callbacks if getattr(cb, "resume_dirpath", None)]
    folders.append(str(Path(trainer.default_root_dir) / "checkpoints"))
    return list(dict.fromkeys(folders))
