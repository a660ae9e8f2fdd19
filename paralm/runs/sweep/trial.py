"""One trial as an operating-system process: start, watch, stop, and what it left on disk.

A trial runs in its own session (process group; paralm/runs/child_process.py), so stopping it reaches
every rank a DDP launcher started, politely first (SIGTERM, then SIGKILL after a grace period). The
group id is recorded in the sweep state, so a driver that was itself killed can find a trial it left
running and end it before resuming that trial (otherwise two copies would write the same folder).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from paralm.runs.child_process import LoggedChild, group_members, signal_group
from paralm.runs.sweep.state import CHECKPOINT_DIR, METRICS_FILE

INTERRUPTED_MIN_CODE = 124  # 124: grace expired, 128 + N: ended by signal N (paralm/fault/exits.py)


# One trial is one logged child process (paralm/runs/child_process.py; a killed driver leaves it running and
# ends it when it resumes, see `end_orphan`).
TrialProcess = LoggedChild


def exit_was_interruption(code: int) -> bool:
    """A signal or a preemption exit (resume it), as opposed to a failure (record it)."""
    return code < 0 or code >= INTERRUPTED_MIN_CODE


def end_orphan(pgid: int | None, marker: str, grace_s: float = 30.0) -> bool:
    """End a trial group left running by a killed driver. Only a group whose command line contains
    `marker` (the trial folder) is touched, so a recycled group id is never signalled. True if ended."""
    if not pgid:
        return False
    ours = False
    for pid in group_members(pgid):
        try:
            ours = ours or marker in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    if not ours:
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        signal_group(pgid, sig)
        deadline = time.monotonic() + grace_s
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not group_members(pgid):
            break
    return True


def read_history(trial_dir: Path, metric: str | None) -> list[dict]:
    """The sweep metric per validation: [{"_step": s, metric: v}], one entry per step (the latest wins,
    so validations repeated after a resume replace the ones recorded before the interruption)."""
    path = trial_dir / METRICS_FILE
    if not path.exists() or not metric:
        return []
    by_step: dict[int, float] = {}
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill; the callback trims it on restart
        if isinstance(row.get(metric), (int, float)):
            by_step[int(row["_step"])] = float(row[metric])
    return [{"_step": s, metric: by_step[s]} for s in sorted(by_step)]


def latest_checkpoint(trial_dir: Path) -> Path | None:
    """The trial's `last.ckpt` if complete and intact, else its newest intact checkpoint, else None."""
    from paralm.fault.checkpoint_io import CheckpointError, verify

    folder = trial_dir / CHECKPOINT_DIR
    if not folder.is_dir():
        return None
    last = folder / "last.ckpt"
    others = sorted((p for p in folder.glob("*.ckpt") if p != last), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in ([last] if last.exists() else []) + others:
        try:
            verify(path)
        except CheckpointError:
            continue
        return path
    return None
