"""Preemption notices: a signal handler that only records the signal, a grace-time watchdog, SLURM requeue.

Why the handler does nothing but record: a signal can arrive anywhere, in the middle of a CUDA call, a
collective or a checkpoint write. Saving from inside the handler (as Lightning's SLURM auto-requeue does)
can write a state that is half one step and half the next, or deadlock a collective. So the handler sets
a flag, and `callbacks.PreemptionCheckpoint` acts on it at the next step boundary, where the weights,
optimiser and data position agree. The watchdog bounds how long that may take: a scheduler sends SIGKILL
after its own grace period, and ending first with a clear message and exit code beats an unexplained kill.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from paralm.fault.exits import EXIT_GRACE_EXPIRED

# signals a scheduler uses to announce the end of a job (SLURM: SIGTERM on preemption/cancel, the
# signal chosen with --signal, often SIGUSR1, before the time limit)
SIGNALS: dict[str, int] = {
    "SIGTERM": signal.SIGTERM,
    "SIGUSR1": signal.SIGUSR1,
    "SIGUSR2": signal.SIGUSR2,
    "SIGHUP": signal.SIGHUP,
    "SIGINT": signal.SIGINT,
}


def parse_signals(names: Iterable[str]) -> tuple[int, ...]:
    """Signal names -> numbers; an unknown name raises with the valid choices."""
    out = []
    for name in names:
        key = str(name).upper()
        key = key if key.startswith("SIG") else f"SIG{key}"
        if key not in SIGNALS:
            raise ValueError(f"unknown preemption signal {name!r}; valid: {', '.join(SIGNALS)}")
        out.append(int(SIGNALS[key]))
    return tuple(dict.fromkeys(out))


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class SignalFlag:
    """Remembers the first watched signal and when it came; installing replaces the current handlers.

    Args:
        signals: signal numbers to watch.
    """

    def __init__(self, signals: Iterable[int]) -> None:
        self.signals = tuple(signals)
        self.signum: int | None = None
        self.received_at: float | None = None  # time.monotonic() of the first signal
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:  # only records: see the module docstring
        if self.signum is None:
            self.received_at = time.monotonic()
            self.signum = signum

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    def install(self) -> bool:
        """Take over the watched signals (main thread only); returns whether handlers were installed."""
        if self.installed or threading.current_thread() is not threading.main_thread():
            return self.installed
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)
        return True

    def restore(self) -> None:
        """Put back the handlers that were there before `install`."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    def seconds_since(self) -> float:
        return 0.0 if self.received_at is None else time.monotonic() - self.received_at


class GraceWatchdog:
    """Ends the process with EXIT_GRACE_EXPIRED if a flagged signal is not dealt with within `grace_s`.

    A daemon thread polls the flag (it is never woken from the signal handler, which only records).
    `disarm()` is called once the preemption checkpoint is written.

    Args:
        flag: the flag to watch.
        grace_s: seconds from the signal to the end of the checkpoint write.
        poll_s: how often the thread looks at the flag.
        exit_fn: how to end the process (tests replace it); default `os._exit`.
    """

    def __init__(self, flag: SignalFlag, grace_s: float, poll_s: float = 0.05,
                 exit_fn: Callable[[int], None] = os._exit) -> None:
        if grace_s <= 0:
            raise ValueError(f"grace_s must be > 0 seconds, got {grace_s}")
        self.flag = flag
        self.grace_s = float(grace_s)
        self.poll_s = poll_s
        self.exit_fn = exit_fn
        self._stop = threading.Event()
        self._disarmed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="paralm-preemption-grace", daemon=True)
            self._thread.start()

    def disarm(self) -> None:
        self._disarmed.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            if self._disarmed.is_set() or self.flag.signum is None:
                continue
            if self.flag.seconds_since() > self.grace_s:
                sys.stderr.write(
                    f"paralm: {signal_name(self.flag.signum)} received {self.flag.seconds_since():.1f}s ago and no "
                    f"step boundary was reached within grace_s={self.grace_s:g}; exiting with {EXIT_GRACE_EXPIRED} "
                    "without a new checkpoint (the previous complete checkpoints are intact)\n")
                sys.stderr.flush()
                self.exit_fn(EXIT_GRACE_EXPIRED)
                return


def slurm_job_id(env: Mapping[str, str] | None = None) -> str | None:
    """The id `scontrol requeue` needs (array jobs: <array job>_<task>), or None outside SLURM."""
    env = os.environ if env is None else env
    array_job, task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    job = f"{array_job}_{task}" if array_job and task else env.get("SLURM_JOB_ID")
    if job is None:
        return None
    if not re.fullmatch(r"[0-9]+(_[0-9]+)?", job):
        raise ValueError(f"SLURM job id {job!r} is not of the form N or N_M; refusing to pass it to scontrol")
    return job


def requeue_slurm_job(job_id: str, timeout_s: float = 30.0) -> str:
    """Run `scontrol requeue JOB`; returns a one-line account (never raises: the checkpoint is already safe)."""
    try:
        done = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"could not requeue SLURM job {job_id}: {err}"
    if done.returncode != 0:
        return f"scontrol requeue {job_id} failed ({done.returncode}): {done.stderr.strip()[:200]}"
    return f"requeued SLURM job {job_id}"
