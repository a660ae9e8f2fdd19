"""Every shipped sweep YAML validates with the `sweeps` package and names only keys the real CLI parses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from paralm.runs.sweep.check import check_cli_keys, probe_points
from paralm.runs.sweep.spec import SweepSpec, import_sweeps

REPO = Path(__file__).resolve().parents[2]
SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))


def test_the_issue_sweeps_are_shipped():
    methods = {p.stem: SweepSpec.load(p) for p in SWEEPS}
    assert methods["lr_lora_rank"].method == "bayes" and methods["lr_lora_rank"].early_terminate["type"] == "hyperband"
    assert set(methods["lr_lora_rank"].parameters) == {"model.optim.lora_lr", "model.model.llm.lora.r"}
    assert methods["implicit_ratio"].method == "grid" and set(methods["implicit_ratio"].parameters) == {
        "data.implicit_ratio"}
    assert methods["projector_stack"].method == "grid" and set(methods["projector_stack"].parameters) == {
        "model.model.projector.stack"}


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweep_yaml_validates_with_the_sweeps_package_and_yields_a_trial(path):
    sweeps = import_sweeps()
    config = yaml.safe_load(path.read_text())
    assert sweeps.schema_violations_from_proposed_config(config) == []
    run = sweeps.next_run(config, [], validate=True)
    assert run is not None and set(run.config) == set(config["parameters"])


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweep_command_uses_the_wandb_macros_and_the_paralm_launcher(path):
    spec = SweepSpec.load(path)
    assert spec.command[:3] == ["${env}", "${interpreter}", "${program}"] and "${args}" in spec.command
    assert spec.program == "paralm/launch.py" and (REPO / spec.program).is_file()
    assert "fit" in spec.command and "--trainer.logger.offline=false" in spec.command  # online under wandb agent


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweep_parameters_are_all_accepted_by_the_lightning_cli(path):
    spec = SweepSpec.load(path)
    assert len(probe_points(spec)) > 1
    assert check_cli_keys(spec, REPO) == []


def test_cli_check_catches_a_misspelled_key_and_a_wrongly_typed_value(tmp_path):
    config = yaml.safe_load((REPO / "sweeps" / "lr_lora_rank.yaml").read_text())
    config["parameters"] = {"model.optim.lora_rl": {"values": [0.001]}, "model.model.llm.lora.r": {"values": ["four"]}}
    config["command"] = [str(REPO / "experiments" / "base.yaml") if w == "experiments/base.yaml" else w
                         for w in config["command"]]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    problems = check_cli_keys(SweepSpec.load(path), tmp_path)
    assert len(problems) == 1 and "lora_rl" in problems[0]
    config["parameters"] = {"model.model.llm.lora.r": {"values": ["four"]}}
    path.write_text(yaml.safe_dump(config))
    problems = check_cli_keys(SweepSpec.load(path), tmp_path)
    assert len(problems) == 1 and "model.model.llm.lora.r" in problems[0] and "int" in problems[0]
