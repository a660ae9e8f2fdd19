"""No orphans: dataloader workers and DDP ranks > 0 end within moments of their parent's death.

Why: a trainer killed by the OOM killer or a scheduler (kill -9: no cleanup code runs) used to leave its
dataloader workers blocked in a futex, holding about 500 MB each for as long as the node stayed up, and
ranks > 0 of a DDP run blocked in gloo forever. The kernel can deliver a signal to a process when its
parent dies (Linux `prctl(PR_SET_PDEATHSIG)`); every such child asks for SIGKILL (a blocked process
cannot run a handler, and a SIGTERM would be taken for a preemption by ranks that checkpoint on it).
Setting the signal races with a parent that died first, so the child then checks `getppid()` against the
pid it expects and exits at once if the parent is already gone. `parent_alive` is the same check for the
places a worker may wait (before each batch); on other systems only that check applies.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
RANK0_ENV = "PARALM_RANK0_PID"  # set by the process that launches ranks; ranks > 0 die with it


def _prctl_deathsig(sig: int) -> bool:
    """Ask the kernel for `sig` when the parent thread exits; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def parent_alive(parent_pid: int) -> bool:
    """True while `parent_pid` is still this process' parent (a dead parent means re-parenting)."""
    return os.getppid() == parent_pid


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> bool:
    """Make this process end when `parent_pid` (its parent) dies; end it now if that already happened.

    Returns whether the kernel will deliver the signal (False: only `parent_alive` checks protect it).
    """
    armed = _prctl_deathsig(sig)
    if not parent_alive(parent_pid):  # the parent died before (or while) the signal was armed
        os._exit(1)
    return armed


class WorkerInit:
    """A dataloader `worker_init_fn`: the worker dies with the process that created the DataLoader.

    Built in that process (it records its pid there), pickled into each worker, called once per worker.
    `then` is an optional worker_init_fn to chain (e.g. seeding).
    """

    def __init__(self, then=None) -> None:
        self.parent_pid = os.getpid()
        self.then = then

    def __call__(self, worker_id: int) -> None:
        die_with_parent(self.parent_pid)
        if self.then is not None:
            self.then(worker_id)


def exit_if_orphaned(parent_pid: int | None) -> None:
    """Called before a worker does more work: a worker whose parent is gone ends instead of blocking."""
    if parent_pid is not None and not parent_alive(parent_pid):
        os._exit(1)


def bind_ranks_to_rank0() -> None:
    """At the start of every `paralm fit/validate/...` process: ranks > 0 die with the rank that started them.

    Lightning's DDP launcher starts ranks > 0 as children of rank 0 (re-running the same command, with
    LOCAL_RANK >= 1); the launching process records its pid in PARALM_RANK0_PID before that, and the
    children arm the death signal against it. A process not started as a rank > 0 records itself,
    overwriting a value inherited from an unrelated parent (e.g. a sweep that runs trials). Ranks started by
    another launcher (torchrun's agent: their parent is not rank 0) are left to that launcher.
    """
    local_rank = os.environ.get("LOCAL_RANK")
    if local_rank in (None, "", "0"):  # a launching process (LOCAL_RANK=0 may be left over from a former run)
        os.environ[RANK0_ENV] = str(os.getpid())
        return
    launcher = os.environ.get(RANK0_ENV, "")
    if not (local_rank.isdigit() and int(local_rank) > 0 and launcher.isdigit()) or int(launcher) == os.getpid():
        return
    if parent_alive(int(launcher)):
        die_with_parent(int(launcher))
    elif not _exists(int(launcher)):  # started by it, but it died before this line: do not block in gloo
        os._exit(1)
    # else: started by another launcher (torchrun's agent), which ends its ranks itself


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
