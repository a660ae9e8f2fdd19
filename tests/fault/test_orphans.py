"""kill -9 of a trainer leaves no process behind: not its dataloader workers, not the other DDP ranks.

Each run starts in its own session (faultkit.Launch), so "every process of that run" is every
live process whose session id is the trainer's pid, wherever it was re-parented to.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from faultkit import build_shards, callback, fit, overlay

from paralm.fault.orphans import WorkerInit, die_with_parent, parent_alive


def session_processes(sid: int) -> list[int]:
    """Live (not zombie) pids whose session is `sid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            found.append(int(entry))
    return found


def wait_until(check, timeout: float, what: str, launch) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if launch.proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {launch.log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            launch.proc.kill()
            raise AssertionError(f"timed out waiting for {what}: {launch.log.read_text()[-3000:]}")
        time.sleep(0.1)


def steps_logged(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def kill_and_count_survivors(launch, sid: int, grace_s: float = 10.0) -> list[int]:
    """kill -9 the trainer; the pids of its run still alive after `grace_s` (then killed, to leave none)."""
    os.kill(launch.proc.pid, signal.SIGKILL)
    launch.proc.wait()
    deadline = time.monotonic() + grace_s
    while session_processes(sid) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = session_processes(sid)
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    return survivors


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return build_shards(tmp_path_factory.mktemp("orphans"), n=40, damaged=False)


def test_kill_9_of_a_fit_ends_its_two_dataloader_workers_within_10_s(shards, tmp_path):
    steps = tmp_path / "steps.jsonl"
    cfg = overlay(tmp_path / "o.yaml", shards, tmp_path / "ckpt", [callback("StepLog", path=str(steps))],
                  max_steps=5000, ckpt_every=10_000, workers=2)
    launch = fit(tmp_path / "run", cfg)
    sid = launch.proc.pid
    wait_until(lambda: steps_logged(steps) >= 2 and len(session_processes(sid)) >= 3, 240,
               "two steps with two workers", launch)
    workers = [p for p in session_processes(sid) if p != sid]
    assert len(workers) >= 2
    assert kill_and_count_survivors(launch, sid) == []


@pytest.mark.slow  # rank 0 alone takes over 30 s to start rank 1 on the shared 2-core machine
@pytest.mark.parametrize("when", ["setup", "training"])
def test_kill_9_of_rank_0_ends_the_other_ddp_rank_within_10_s(shards, tmp_path, when):
    """`setup`: rank 1 exists but waits for rank 0's store (it would wait the 30-min timeout);
    `training`: both ranks are in the step loop (rank 1 blocks in a gloo collective)."""
    steps = tmp_path / "steps-{rank}.jsonl"
    cfg = overlay(tmp_path / "o.yaml", shards, tmp_path / "ckpt", [callback("StepLog", path=str(steps))],
                  max_steps=5000, ckpt_every=10_000, workers=0)
    launch = fit(tmp_path / "run", cfg, args=("--trainer.accelerator=cpu", "--trainer.devices=2",
                                              "--trainer.strategy=ddp"))
    sid = launch.proc.pid
    rank1 = tmp_path / "steps-1.jsonl"
    if when == "setup":
        wait_until(lambda: len(session_processes(sid)) >= 2, 300, "rank 1 to start", launch)
    else:
        wait_until(lambda: steps_logged(rank1) >= 2, 300, "rank 1 to train two steps", launch)
    assert len(session_processes(sid)) >= 2
    assert kill_and_count_survivors(launch, sid) == []


def test_a_child_whose_parent_died_before_it_armed_the_signal_exits_at_once(tmp_path):
    """The race `getppid()` closes: the parent is gone before the death signal is set."""
    marker = tmp_path / "survived"
    pid = os.fork()
    if pid == 0:  # child: pretend our parent is a pid that is not our parent (it "died" already)
        try:
            die_with_parent(os.getppid() + 10_000_000)
            marker.write_text("still running")
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 1 and not marker.exists()


def test_worker_init_records_the_creating_process_and_arms_in_the_worker(tmp_path):
    init = WorkerInit(then=lambda wid: (tmp_path / f"w{wid}").write_text(json.dumps(os.getppid())))
    assert init.parent_pid == os.getpid() and parent_alive(os.getppid())
    pid = os.fork()
    if pid == 0:
        try:
            init(0)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert json.loads((tmp_path / "w0").read_text()) == os.getpid()


def test_the_session_guard_finds_a_leaked_process_wherever_it_was_reparented_and_kills_it():
    import subprocess

    from process_guard import RUN_ENV, survivors, tagged_processes

    tag = f"guard-test-{os.getpid()}"  # its own tag: the guard must not touch other tests' live processes
    leaked = subprocess.Popen(["sleep", "60"], start_new_session=True,  # its own session, like a daemon
                              env={**os.environ, RUN_ENV: tag})
    try:
        assert leaked.pid in tagged_processes(tag)
        assert leaked.pid in survivors(tag, grace_s=0.3)
        assert leaked.wait(timeout=10) == -signal.SIGKILL
    finally:
        leaked.kill()
        leaked.wait()


@pytest.mark.parametrize("env, armed_against", [
    ({}, None),                                  # a plain command: records itself as the launcher
    ({"LOCAL_RANK": "0"}, None),                 # rank 0 (or a stale LOCAL_RANK=0): records itself
    ({"LOCAL_RANK": "1", "PARALM_RANK0_PID": "parent"}, "parent"),  # a rank started by rank 0: armed
    ({"LOCAL_RANK": "1", "PARALM_RANK0_PID": "other"}, "skip"),      # started by another launcher: left alone
])
def test_ranks_bind_to_the_rank_that_started_them(env, armed_against, monkeypatch):
    import paralm.fault.orphans as orphans

    calls = []
    monkeypatch.setattr(orphans, "die_with_parent", lambda pid, sig=signal.SIGKILL: calls.append(pid))
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("PARALM_RANK0_PID", raising=False)  # restored after the test, whatever the code sets
    other = subprocess.Popen(["sleep", "30"])  # alive and not our parent (pid 1 can be: a detached pytest)
    try:
        for name, value in env.items():
            monkeypatch.setenv(name, {"parent": str(os.getppid()), "other": str(other.pid)}.get(value, value))
        orphans.bind_ranks_to_rank0()
    finally:
        other.kill()
        other.wait()
    if armed_against is None:
        assert os.environ["PARALM_RANK0_PID"] == str(os.getpid()) and calls == []
    elif armed_against == "parent":
        assert calls == [os.getppid()]
    else:
        assert calls == []
