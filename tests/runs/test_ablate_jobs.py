"""`paralm ablate --jobs N`: pairs side by side in their own processes, with the results of one at a time.

The pool itself (paralm/runs/ablate/pool.py) is tested on plain commands: failures, kill -9 of the
driver, a preemption notice; the ablation test runs the console script as a user types it.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from ablatekit import kit_ablation, shared_kit, write_ablation

from paralm.fault.exits import FaultExit, UserError
from paralm.runs.ablate import main
from paralm.runs.ablate.config import parse_ablation
from paralm.runs.ablate.pool import POOL_LOG, PairJob, run_pool, slot_environments
from paralm.runs.child_process import group_members

PARALM = str(Path(sys.executable).parent / "paralm")


def _alive(pid: int) -> bool:
    """A pair process (a session leader: its pid is its group id) or anything it started is still running."""
    return bool(group_members(pid))


def _pool_rows(log_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (log_dir / POOL_LOG).read_text().splitlines()]


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory):
    """The same two-pair ablation run one pair at a time (in process) and with --jobs 2 (console script)."""
    shards, cache = shared_kit(tmp_path_factory)
    tmp = tmp_path_factory.mktemp("ablate_jobs")
    path = write_ablation(tmp, kit_ablation(tmp, shards, cache=cache))
    assert main([str(path), "--out", str(tmp / "one")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([PARALM, "ablate", str(path), "--out", str(tmp / "two"), "--jobs", "2"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return tmp, done.stdout


def test_two_jobs_give_the_predictions_and_scores_of_one_at_a_time(side_by_side):
    tmp, _ = side_by_side
    for row in ("baseline", "explicit"):
        one, two = tmp / "one" / "results" / row / "seed0", tmp / "two" / "results" / row / "seed0"
        for name in ("predictions.jsonl", "predictions_shuffled.jsonl"):
            assert (one / name).read_text() == (two / name).read_text(), (row, name)
        assert json.loads((one / "scores.json").read_text()) == json.loads((two / "scores.json").read_text())
    assert (tmp / "one" / "report" / "report.csv").read_text() == (tmp / "two" / "report" / "report.csv").read_text()


def test_two_jobs_ran_side_by_side_in_their_own_processes_and_left_none(side_by_side):
    tmp, stdout = side_by_side
    rows = _pool_rows(tmp / "two" / "logs")
    assert sorted(r["pair"] for r in rows) == ["baseline-seed0", "explicit-seed0"]
    assert {r["slot"] for r in rows} == {0, 1} and all(r["exit_code"] == 0 for r in rows)
    a, b = rows
    assert a["started"] < b["ended"] and b["started"] < a["ended"], "the two pairs did not overlap"
    assert not any(_alive(r["pid"]) for r in rows)
    for r in rows:  # each pair's own output is in its log, not interleaved on the console
        assert "--pair-index" in Path(r["log"]).read_text()
    assert "2 pair(s) to train, 2 at a time" in stdout and "[2/2]" in stdout


def test_a_rerun_with_jobs_keeps_finished_pairs_and_starts_none(side_by_side, capsys):
    tmp, _ = side_by_side
    assert main([str(tmp / "ablation.yaml"), "--out", str(tmp / "two"), "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 finished (row, seed) pair(s) kept" in out and "started in slot" not in out
    assert len(_pool_rows(tmp / "two" / "logs")) == 2


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_a_failed_pair_does_not_stop_the_others_and_its_exit_code_and_log_are_reported(tmp_path, capsys):
    pairs = [PairJob(0, ("a",), 0), PairJob(1, ("b",), 0), PairJob(2, ("c",), 0)]
    commands = {0: _py("print('pair a fine')"), 1: _py("import sys; print('pair b broke'); sys.exit(4)"),
                2: _py("print('pair c fine')")}
    with pytest.raises(FaultExit) as err:
        run_pool(pairs, lambda p: commands[p.index], [{}, {}], tmp_path, poll_s=0.05)
    assert err.value.exit_code == 4
    assert "1 of 3 pair(s) failed: b-seed0 (exit 4)" in str(err.value) and "b-seed0.log" in str(err.value)
    assert {r["pair"]: r["exit_code"] for r in _pool_rows(tmp_path)} == {"a-seed0": 0, "b-seed0": 4, "c-seed0": 0}
    assert "pair b broke" in capsys.readouterr().out  # the end of the failed pair's log is shown


DRIVER = """
import sys, time
from pathlib import Path
from paralm.fault.exits import FaultExit
from paralm.runs.ablate.pool import PairJob, run_pool
out = Path(sys.argv[1])
child = [sys.executable, "-c", sys.argv[2], str(out)]
try:  # as the paralm CLI does (paralm/cli_guard.py): the message, then its exit code
    run_pool([PairJob(i, (f"p{i}",), 0) for i in range(2)], lambda p: child + [str(p.index)], [{}, {}],
             out / "logs", poll_s=0.05, stop_grace_s=10)
except FaultExit as err:
    print(err)
    sys.exit(err.exit_code)
"""
SLEEPER = """
import os, signal, sys, time
from pathlib import Path
out, index = Path(sys.argv[1]), sys.argv[2]
def checkpoint(signum, frame):
    (out / f"checkpointed-{index}").write_text(str(signum))
    sys.exit(128 + signum)
signal.signal(signal.SIGTERM, checkpoint)
(out / f"pid-{index}").write_text(str(os.getpid()))
time.sleep(120)
"""


def _start_driver(tmp_path: Path) -> tuple[subprocess.Popen, list[int]]:
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path), SLEEPER], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(tmp_path.glob("pid-*"))) < 2:
        time.sleep(0.1)
    pids = [int(p.read_text()) for p in sorted(tmp_path.glob("pid-*"))]
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    return driver, pids


def test_pairs_die_with_a_driver_killed_by_sigkill(tmp_path):
    driver, pids = _start_driver(tmp_path)
    driver.kill()
    driver.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)


def test_a_preemption_notice_reaches_every_pair_before_the_driver_exits_128_plus_n(tmp_path):
    driver, pids = _start_driver(tmp_path)
    driver.send_signal(signal.SIGTERM)
    out, _ = driver.communicate(timeout=30)
    assert driver.returncode == 128 + signal.SIGTERM, out
    assert sorted(p.name for p in tmp_path.glob("checkpointed-*")) == ["checkpointed-0", "checkpointed-1"]
    assert "rerun the same command to resume them" in out
    assert not any(_alive(p) for p in pids)


def test_each_slot_gets_its_own_gpus_or_its_own_cpu_threads():
    assert slot_environments(2, 2, 1, ["0", "1", "2", "3"]) == [{"CUDA_VISIBLE_DEVICES": "0,1"},
                                                                {"CUDA_VISIBLE_DEVICES": "2,3"}]
    assert slot_environments(2, 1, 3, ["4", "6"]) == [{"CUDA_VISIBLE_DEVICES": "4"}, {"CUDA_VISIBLE_DEVICES": "6"}]
    assert slot_environments(2, 1, 1, []) == [{"OMP_NUM_THREADS": "1"}] * 2
    with pytest.raises(UserError, match="--jobs 4 x --devices 2 needs 8 GPUs; 4 visible"):
        slot_environments(4, 2, 1, ["0", "1", "2", "3"])


def test_jobs_below_one_is_refused_in_the_file_and_on_the_command_line(tmp_path, tmp_path_factory):
    shards, _ = shared_kit(tmp_path_factory)
    doc = kit_ablation(tmp_path, shards, jobs=0)
    with pytest.raises(ValueError, match="jobs must be a whole number >= 1, got 0"):
        parse_ablation(yaml.safe_load(yaml.safe_dump(doc)))
    path = write_ablation(tmp_path, kit_ablation(tmp_path, shards))
    with pytest.raises(UserError, match="jobs must be a whole number >= 1"):  # the CLI: one line, exit 2
        main([str(path), "--jobs", "0"])
