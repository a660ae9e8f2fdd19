"""The test suite leaves no process behind: a session fixture that fails if one of its processes outlives it.

Why: kill -9 tests used to leave `paralm fit` dataloader workers alive for hours (about 490 MB each),
re-parented away from pytest, so "children of pytest" misses exactly the processes that matter. Every
process the run starts inherits `PARALM_TEST_RUN=<pytest pid>` in its environment (set at conftest import),
so the guard finds them through /proc wherever they were re-parented. Survivors get a grace period (a
process killed a moment ago may still be exiting), are then killed, and the session fails naming them.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

RUN_ENV = "PARALM_TEST_RUN"


def mark_test_run() -> None:
    """Tag this pytest process; every process started from it inherits the tag."""
    os.environ[RUN_ENV] = str(os.getpid())


def tagged_processes(tag: str) -> dict[int, str]:
    """pid -> command line of every live process (not zombie) whose environment carries RUN_ENV=tag."""
    needle = f"{RUN_ENV}={tag}\0".encode()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if needle not in Path(f"/proc/{entry}/environ").read_bytes() + b"\0":
                continue
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found[int(entry)] = cmd.strip()[:200]
    return found


def survivors(tag: str, grace_s: float = 10.0) -> dict[int, str]:
    """Tagged processes still alive after `grace_s`; they are killed before returning."""
    deadline = time.monotonic() + grace_s
    alive = tagged_processes(tag)
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = tagged_processes(tag)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return alive


def stop_in_process_services() -> None:
    """End services that libraries started for this pytest process itself (W&B's `wandb-core` serves every
    in-process `wandb.init` and only exits with its parent): they belong to the run, not to a leaked child."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None:
        wandb.teardown()


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind():
    """Fails the session when a process started by the tests is still alive at its end."""
    tag = os.environ.get(RUN_ENV, "")
    yield
    if not Path("/proc").is_dir() or not tag:
        return
    stop_in_process_services()
    left = survivors(tag)
    if left:
        pytest.fail(f"{len(left)} process(es) started by the tests outlived them (now killed): "
                    + "; ".join(f"{pid}: {cmd}" for pid, cmd in sorted(left.items())), pytrace=False)
