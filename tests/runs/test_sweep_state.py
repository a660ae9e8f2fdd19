"""The sweep journal and what the driver reads from trial folders: hashes, history, ranking, checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from callbacks.sweep_trial import _repair_tail
from paralm.fault.checkpoint_io import save_verified
from paralm.runs.sweep.spec import import_sweeps
from paralm.runs.sweep.state import METRICS_FILE, SweepState, SweepStateError, Trial, config_hash
from paralm.runs.sweep.table import ranked, table_rows
from paralm.runs.sweep.trial import end_orphan, group_members, latest_checkpoint, read_history

HYPERBAND = {"method": "grid", "metric": {"name": "val/loss", "goal": "minimize"},
             "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 3},
             "parameters": {"model.optim.lora_lr": {"values": [0.1, 1e-9]}}}


def trial(id_: str, values: list[float], status: str = "finished") -> Trial:
    return Trial(id=id_, params={"x": id_}, config_hash="0" * 64, dir=id_, status=status,
                 history=[{"_step": 2 * (i + 1), "val/loss": v} for i, v in enumerate(values)])


def test_config_hash_follows_config_file_content_not_the_interpreter_path(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("a: 1\n")
    words = ["/usr/bin/env", "python", "paralm/launch.py", "fit", "--config", "c.yaml", "--x=1"]
    first = config_hash(words, tmp_path)
    assert first == config_hash(list(words), tmp_path)
    assert config_hash(words[:-1] + ["--x=2"], tmp_path) != first
    cfg.write_text("a: 2\n")
    assert config_hash(words, tmp_path) != first


def test_reopening_a_sweep_folder_with_an_edited_yaml_is_refused(tmp_path):
    state = SweepState.open(tmp_path, "s", tmp_path / "s.yaml", "a" * 64, seed=0)
    state.new_trial({"x": 1}, "b" * 64)
    again = SweepState.open(tmp_path, "s", tmp_path / "s.yaml", "a" * 64, seed=0)
    assert [t.params for t in again.trials] == [{"x": 1}] and again.trials[0].status == "running"
    with pytest.raises(SweepStateError, match="was edited; use a new --out folder"):
        SweepState.open(tmp_path, "s", tmp_path / "s.yaml", "c" * 64, seed=0)


def test_history_keeps_the_latest_value_per_step_and_skips_a_cut_line(tmp_path):
    rows = [{"_step": 2, "val/loss": 3.0}, {"_step": 4, "val/loss": 2.5}, {"_step": 4, "val/loss": 2.4},
            {"_step": 6, "train/loss": 1.0}]
    (tmp_path / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"_step": 8, "val/lo')
    assert read_history(tmp_path, "val/loss") == [{"_step": 2, "val/loss": 3.0}, {"_step": 4, "val/loss": 2.4}]
    _repair_tail(tmp_path / METRICS_FILE)
    assert (tmp_path / METRICS_FILE).read_text().endswith('"train/loss": 1.0}\n')


def test_table_ranks_by_best_value_for_either_goal_and_puts_trials_without_values_last():
    trials = [trial("t0", [3.0, 2.0]), trial("t1", [1.5, 4.0], "stopped"), trial("t2", [], "failed"),
              trial("t3", [2.5, 5.0])]
    assert [t.id for t in ranked(trials, "val/loss", "minimize")] == ["t1", "t0", "t3", "t2"]
    assert [t.id for t in ranked(trials, "val/loss", "maximize")] == ["t3", "t1", "t0", "t2"]
    rows = table_rows(trials, "val/loss", "minimize")
    assert [(r["rank"], r["trial"], r["status"], r["best val/loss"]) for r in rows][:2] == [
        (1, "t1", "stopped", "1.5"), (2, "t0", "finished", "2")]


def test_journal_trials_feed_hyperband_so_a_clearly_worse_running_trial_is_stopped():
    sweeps = import_sweeps()
    good = trial("t0", [3.0, 2.0, 1.5])
    bad, fine = trial("t1", [3.0, 3.0], "running"), trial("t2", [3.0, 1.9], "running")
    stopped = sweeps.stop_runs(HYPERBAND, [good.sweep_run("val/loss"), bad.sweep_run("val/loss"),
                                           fine.sweep_run("val/loss")], validate=True)
    assert [r.name for r in stopped] == ["t1"]


def test_resume_checkpoint_is_last_ckpt_unless_damaged_then_the_newest_intact_one(tmp_path):
    folder = tmp_path / "checkpoints"
    assert latest_checkpoint(tmp_path) is None
    save_verified({"step": 2}, folder / "step=2.ckpt")
    time.sleep(0.01)
    save_verified({"step": 4}, folder / "step=4.ckpt")
    save_verified({"step": 4}, folder / "last.ckpt")
    assert latest_checkpoint(tmp_path) == folder / "last.ckpt"
    (folder / "last.ckpt").write_bytes(b"torn")
    assert latest_checkpoint(tmp_path) == folder / "step=4.ckpt"
    (folder / "step=4.ckpt.ok").unlink()
    assert latest_checkpoint(tmp_path) == folder / "step=2.ckpt"


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="group lookup reads /proc")
def test_a_leftover_trial_group_is_ended_only_when_it_runs_that_trial(tmp_path):
    marker = str(tmp_path / "t003-abcdef12")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker], start_new_session=True)
    try:
        time.sleep(0.3)
        assert not end_orphan(proc.pid, str(tmp_path / "t009-other"), grace_s=2)
        assert proc.poll() is None
        assert end_orphan(proc.pid, marker, grace_s=5)
        assert proc.wait(timeout=5) == -signal.SIGTERM and not group_members(proc.pid)
    finally:
        if proc.poll() is None:
            proc.kill()
