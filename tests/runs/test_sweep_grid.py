"""`paralm sweep` offline: a 2x2 grid over the debug model, killed after its second trial and restarted.

One sweep, two driver runs. The first driver is SIGKILLed once two trials have ended and the third
has written a checkpoint (the trial it leaves behind keeps running, as it would after a lost login
shell). The restarted driver must end that leftover, rerun no ended trial, resume the third trial
from its checkpoint, run the fourth, and print the four trials ranked by val/loss.
"""

from __future__ import annotations

import csv
import re
import subprocess

import pytest
from sweepkit import (
    DEBUG_CONFIG,
    LAUNCH,
    build_shards,
    child_env,
    fit_command,
    kill_group,
    read_state,
    sweep_argv,
    wait_for,
    write_overlay,
    write_sweep,
)

pytestmark = pytest.mark.timeout(600)  # the module's runs happen in a fixture, inside the first test's time
GRID = {"model.optim.lora_lr": [0.01, 0.001], "model.model.projector.stack": [2, 4]}


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory):
    """Run the sweep, kill the driver after trial 2 (trial 3 has a checkpoint), restart it to the end."""
    tmp = tmp_path_factory.mktemp("grid")
    overlay = write_overlay(tmp / "overlay.yaml", build_shards(tmp))
    sweep = write_sweep(tmp / "grid.yaml", {
        "name": "grid-2x2", "program": str(LAUNCH), "method": "grid",
        "metric": {"name": "val/loss", "goal": "minimize"},
        "parameters": {k: {"values": v} for k, v in GRID.items()},
        "command": fit_command(DEBUG_CONFIG, overlay),
    })
    out, env = tmp / "sweep", child_env()
    first = subprocess.Popen(sweep_argv(sweep, out), cwd=tmp, env=env, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def third_trial_checkpointed() -> bool:
            trials = read_state(out)["trials"]
            return (len(trials) == 3 and trials[2]["status"] == "running"
                    and any((out / trials[2]["dir"] / "checkpoints").glob("*.ckpt.ok")))

        wait_for(third_trial_checkpointed, 300, "the third trial's first checkpoint", first)
    finally:
        kill_group(first.pid)
        first.wait()
    killed_state = read_state(out)
    second = subprocess.run(sweep_argv(sweep, out), cwd=tmp, env=env, capture_output=True, text=True, timeout=400)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    return {"out": out, "killed": killed_state, "final": read_state(out), "stdout": second.stdout}


def test_killed_sweep_had_two_ended_trials_and_one_running(grid_sweep):
    trials = grid_sweep["killed"]["trials"]
    assert [t["status"] for t in trials] == ["finished", "finished", "running"]


def test_restarted_sweep_finishes_all_four_grid_points_once(grid_sweep):
    trials = grid_sweep["final"]["trials"]
    assert [t["status"] for t in trials] == ["finished"] * 4
    points = {(t["params"]["model.optim.lora_lr"], t["params"]["model.model.projector.stack"]) for t in trials}
    assert points == {(lr, k) for lr in GRID["model.optim.lora_lr"] for k in GRID["model.model.projector.stack"]}


def test_restart_reruns_no_finished_trial(grid_sweep):
    before, after = grid_sweep["killed"]["trials"], grid_sweep["final"]["trials"]
    for old, new in zip(before[:2], after[:2], strict=True):
        assert new["attempts"] == old["attempts"] and len(new["attempts"]) == 1
    assert len(after[3]["attempts"]) == 1 and after[3]["attempts"][0]["resume_from"] is None


def test_interrupted_trial_resumes_from_its_last_checkpoint(grid_sweep):
    third = grid_sweep["final"]["trials"][2]
    out = grid_sweep["out"]
    assert len(third["attempts"]) == 2
    resume_from = third["attempts"][1]["resume_from"]
    assert resume_from and resume_from.startswith(str(out / third["dir"] / "checkpoints"))
    assert f"--ckpt_path={resume_from}" in third["attempts"][1]["command"]
    log = (out / third["dir"] / "trial.log").read_text()
    assert "Restored all states from the checkpoint" in log
    assert [h["_step"] for h in third["history"]] == [2, 4, 6]  # one validation per step, none lost or doubled


def test_each_trial_records_its_config_hash_and_own_run_folder(grid_sweep):
    out, trials = grid_sweep["out"], grid_sweep["final"]["trials"]
    hashes = [t["config_hash"] for t in trials]
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes) and len(set(hashes)) == 4
    for t in trials:
        folder = out / t["dir"]
        assert folder.name.endswith(t["config_hash"][:8])
        assert (folder / "config.yaml").exists() and list((folder / "wandb").glob("offline-run-*"))


def test_sweep_prints_and_writes_trials_ranked_by_metric(grid_sweep):
    out, stdout = grid_sweep["out"], grid_sweep["stdout"]
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4]
    best = [float(r["best val/loss"]) for r in rows]
    assert best == sorted(best)
    by_trial = {t["id"]: min(h["val/loss"] for h in t["history"]) for t in grid_sweep["final"]["trials"]}
    assert [r["trial"] for r in rows] == sorted(by_trial, key=by_trial.get)
    table = stdout[stdout.index("rank  trial"):].splitlines()
    assert [line.split()[1] for line in table[2:6]] == [r["trial"] for r in rows]
