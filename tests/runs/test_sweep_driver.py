"""Driver checks that need no trial to run: refused restarts and refused options, each with a one-line reason."""

from __future__ import annotations

import yaml

from paralm.runs.sweep import SweepDriver, SweepOptions, main
from paralm.runs.sweep.state import SweepState


def make_sweep(tmp_path, method: str = "grid"):
    cfg = tmp_path / "base.yaml"
    cfg.write_text("seed_everything: 1\n")
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "s", "program": "paralm/launch.py", "method": method,
        "metric": {"name": "val/loss", "goal": "minimize"},
        "parameters": {"model.optim.lora_lr": {"values": [0.1, 0.01]}},
        "command": ["${env}", "${interpreter}", "${program}", "fit", "--config", "base.yaml", "${args}"]}))
    return cfg, sweep


def test_restart_after_a_config_file_edit_is_refused_before_any_trial_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # main() runs trial commands relative to the working directory
    cfg, sweep = make_sweep(tmp_path)
    opts = SweepOptions(sweep_file=sweep, out=tmp_path / "out", cwd=tmp_path)
    driver = SweepDriver(opts)
    trial = driver.state.new_trial({"model.optim.lora_lr": 0.1}, driver._hash({"model.optim.lora_lr": 0.1}))
    trial.status = "finished"
    driver.state.save()
    cfg.write_text("seed_everything: 2\n")
    assert main([str(sweep), "--out", str(tmp_path / "out")]) == 2
    assert "t000: its resolved arguments changed" in capsys.readouterr().err
    assert len(SweepState.open(tmp_path / "out", "s", sweep, driver.spec.text_sha256, 0).trials) == 1


def test_bayes_without_count_is_refused(tmp_path, capsys):
    _, sweep = make_sweep(tmp_path, method="bayes")
    assert main([str(sweep), "--out", str(tmp_path / "out")]) == 2
    assert "method bayes needs --count N" in capsys.readouterr().err


def test_grid_count_defaults_to_the_grid_size(tmp_path):
    _, sweep = make_sweep(tmp_path)
    assert SweepDriver(SweepOptions(sweep_file=sweep, out=tmp_path / "out", cwd=tmp_path)).count == 2

