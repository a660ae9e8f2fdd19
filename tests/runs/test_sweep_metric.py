"""A sweep whose metric the trials never log is caught: by `paralm sweep --check` before it runs (naming
the metrics the trial does log), and by a finished sweep, which exits 5 with the same message."""

from __future__ import annotations

from pathlib import Path

import yaml

from paralm.runs.sweep import main
from paralm.runs.sweep.metrics import expected_metrics, sweep_metric_problem

REPO = Path(__file__).resolve().parents[2]

FAKE_TRIAL = '''import json, sys
from pathlib import Path
folder = Path(next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--trainer.callbacks.trial_dir=")))
folder.mkdir(parents=True, exist_ok=True)
with open(folder / "metrics.jsonl", "a") as f:
    f.write(json.dumps({"_step": 10, "epoch": 0, "train/loss": 2.0, "val/loss": 1.5}) + "\\n")
'''


def test_check_says_the_metric_is_not_logged_and_names_the_logged_ones(tmp_path, capsys, monkeypatch):
    sweep = tmp_path / "typo.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "typo", "program": "paralm/launch.py", "method": "grid",
        "metric": {"name": "val_loss", "goal": "minimize"},
        "parameters": {"model.optim.lora_lr": {"values": [0.001]}},
        "command": ["${env}", "${interpreter}", "${program}", "fit", "--config", "experiments/debug_cpu.yaml", "${args}"]}))
    monkeypatch.chdir(REPO)  # the sweep's --config path is relative to the repository
    assert main([str(sweep), "--check"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "the sweep metric 'val_loss' is not among the metrics the trials log:" in line
    assert "val/loss" in line and "val/loss_general" in line and "train/loss" in line


def test_expected_metrics_follow_the_sources_and_whether_validation_runs():
    config = {"data": {"train_sources": [{"name": "general"}, {"name": "implicit"}],
                       "val_sources": [{"name": "cpqa"}]}, "trainer": {"limit_val_batches": 1.0}}
    assert expected_metrics(config) == {"train/loss", "train/nonfinite_skipped", "train/loss_general",
                                        "train/loss_implicit", "val/loss", "val/loss_cpqa"}
    config["trainer"]["limit_val_batches"] = 0
    assert "val/loss" not in expected_metrics(config)


def test_a_finished_sweep_whose_metric_never_appeared_exits_5_naming_what_was_logged(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # trial commands run in the working directory
    (tmp_path / "trial.py").write_text(FAKE_TRIAL)
    results = {}
    for metric in ("val_loss", "val/loss"):
        sweep = tmp_path / f"{metric.replace('/', '-')}.yaml"
        sweep.write_text(yaml.safe_dump({
            "name": f"s-{metric.replace('/', '-')}", "program": "trial.py", "method": "grid",
            "metric": {"name": metric, "goal": "minimize"}, "parameters": {"x.y": {"values": [1]}},
            "command": ["${env}", "${interpreter}", "${program}", "fit", "${args}"]}))
        results[metric] = main([str(sweep), "--out", str(tmp_path / metric.replace("/", "-")), "--poll", "0.05"])
        results[metric + " err"] = capsys.readouterr().err
    assert results["val/loss"] == 0
    assert results["val_loss"] == 5
    assert ("paralm sweep: nothing usable: the sweep metric 'val_loss' is not among the metrics the trials "
            "logged: train/loss, val/loss") in results["val_loss err"]


def test_no_trial_no_verdict_and_no_validation_is_said():
    assert sweep_metric_problem("val/loss", []) is None
    assert "none (no validation ran)" in sweep_metric_problem("val/loss", [Path("/nonexistent/t000")])
