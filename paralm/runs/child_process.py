"""A command run as its own operating-system process, its output in a log file: start, poll, stop.

Used by `paralm sweep` (one process per trial) and by `paralm ablate --jobs N` (one process per
(training signature, seed) pair). The child runs in its own session (process group), so stopping it
reaches every rank a DDP launcher started. Stopping is polite first: SIGTERM lets a fit's preemption
handling write a checkpoint at the next step boundary, then SIGKILL after a grace period.

`die_with_parent=True` also asks the kernel to SIGKILL the child when the process that started it dies
(paralm/fault/orphans.py), for drivers with nothing to come back for: a killed `paralm ablate` must
not leave pairs training with nobody to collect them (a rerun resumes them from their checkpoints). A
sweep driver leaves it off: it records the group id and ends a trial it left behind when it resumes.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from paralm.fault.orphans import die_with_parent as _arm_death_signal


class LoggedChild:
    """A launched command; stdout and stderr go to `log_path` (appended across attempts)."""

    def __init__(self, command: list[str], cwd: Path | str | None, log_path: Path, env: dict[str, str],
                 die_with_parent: bool = False) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self._log.write(f"\n$ {' '.join(command)}\n".encode())
        self._log.flush()
        parent = os.getpid()
        self.proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True,
                                     preexec_fn=(lambda: _arm_death_signal(parent)) if die_with_parent else None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def pgid(self) -> int:
        return self.proc.pid  # the session leader's pid is the group id

    def poll(self) -> int | None:
        code = self.proc.poll()
        if code is not None:
            self._log.close()
        return code

    def stop(self, grace_s: float, first: int = signal.SIGTERM) -> int:
        """Send `first` (SIGTERM) to the whole group, wait up to `grace_s`, then SIGKILL; returns the exit code."""
        for sig, wait in ((first, grace_s), (signal.SIGKILL, 30.0)):
            if self.proc.poll() is not None:
                break
            signal_group(self.pgid, sig)
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        signal_group(self.pgid, signal.SIGKILL)  # ranks a launcher left behind
        self._log.close()
        return self.proc.wait()


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def group_members(pgid: int) -> list[int]:
    """Live pids in process group `pgid`, zombies excluded (Linux /proc; empty elsewhere)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a child's log (what a user needs to see when it failed)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
