"""Bayes search with hyperband early termination, offline: a clearly worse trial is stopped while running.

Only the LoRA learning rate is swept (the projector's rate is pinned near zero), over a range whose
bottom leaves the debug model's loss flat. The driver seeds the search per trial, so with seed 4 the
first suggestion lands in the learning range (lr about 5e-3) and the second at about 1e-6, which
cannot move the loss; hyperband (eta 3, min_iter 1) must then stop the second trial before its last
validation, from the metric history the trial reports while it runs. The trial runs 15 validations so that
the stop (driver polls every 0.2 s) lands before the end however fast the machine steps; with 5 a fast
run could finish first.
"""

from __future__ import annotations

import subprocess

import pytest
from sweepkit import (
    DEBUG_CONFIG,
    LAUNCH,
    build_shards,
    child_env,
    fit_command,
    read_state,
    sweep_argv,
    write_overlay,
    write_sweep,
)

pytestmark = pytest.mark.timeout(600)  # the module's runs happen in a fixture, inside the first test's time
MAX_STEPS, VAL_EVERY = 30, 2  # 15 validations: the stop lands well before the end however fast a step is


@pytest.fixture(scope="module")
def bayes_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bayes")
    overlay = write_overlay(tmp / "overlay.yaml", build_shards(tmp),
                            trainer={"max_steps": MAX_STEPS, "val_check_interval": VAL_EVERY},
                            model={"optim": {"projector_lr": 1.0e-9, "warmup_steps": 0}})
    sweep = write_sweep(tmp / "bayes.yaml", {
        "name": "bayes-hyperband", "program": str(LAUNCH), "method": "bayes",
        "metric": {"name": "val/loss", "goal": "minimize"},
        "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 3},
        "parameters": {"model.optim.lora_lr": {"distribution": "log_uniform_values", "min": 1.0e-7, "max": 0.05}},
        "command": fit_command(DEBUG_CONFIG, overlay),
    })
    out = tmp / "sweep"
    done = subprocess.run(sweep_argv(sweep, out, "--count", "2", "--seed", "4"), cwd=tmp, env=child_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"out": out, "trials": read_state(out)["trials"], "stdout": done.stdout}


def test_hyperband_stops_the_clearly_worse_trial_before_its_end(bayes_sweep):
    good, bad = bayes_sweep["trials"]
    assert good["status"] == "finished" and len(good["history"]) == MAX_STEPS // VAL_EVERY
    assert bad["status"] == "stopped" and bad["stop_requested"]
    assert len(bad["history"]) < MAX_STEPS // VAL_EVERY
    best = lambda t: min(h["val/loss"] for h in t["history"])  # noqa: E731
    assert best(bad) > best(good) + 0.05
    assert bad["params"]["model.optim.lora_lr"] < 1e-4 < good["params"]["model.optim.lora_lr"]


def test_stop_reaches_the_running_trial_through_its_stop_file(bayes_sweep):
    bad = bayes_sweep["trials"][1]
    folder = bayes_sweep["out"] / bad["dir"]
    assert (folder / "STOP").read_text().startswith("hyperband")
    assert bad["attempts"][0]["exit_code"] == 0  # it stopped itself at a validation, it was not killed
    assert "hyperband stops it" in bayes_sweep["stdout"]


def test_stopped_trial_is_ranked_with_the_metric_it_reached(bayes_sweep):
    rows = (bayes_sweep["out"] / "results.md").read_text().splitlines()
    trial_rows = [r for r in rows if r.startswith("| 1 ") or r.startswith("| 2 ")]
    assert "t000" in trial_rows[0] and "finished" in trial_rows[0]
    assert "t001" in trial_rows[1] and "stopped" in trial_rows[1]
