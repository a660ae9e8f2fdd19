"""W&B goes online only when asked: the config (or an explicit WANDB_MODE) decides, nothing else.

The CLI used to export WANDB_MODE=offline by default, which beat `--trainer.logger.offline=false`, so no
run (and no sweep trial under `wandb agent`) ever reached a server. tests/conftest.py sets the same
default for the test run, so every test here deletes the variable first. `wandb.init` is replaced by a
spy that records its arguments and stops the run: no traffic leaves the machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from paralm.lightning_cli import run_lightning_cli
from paralm.runs.sweep.check import cli_argv
from paralm.runs.sweep.spec import SweepSpec
from paralm.wandb_run import resolve_mode, said_mode

ROOT = Path(__file__).resolve().parents[2]
WANDB = "--trainer.logger=lightning.pytorch.loggers.WandbLogger"


class _Stopped(BaseException):
    """Raised by the spy once wandb.init was called (BaseException: the CLI must not turn it into a line)."""


@pytest.fixture
def init_calls(monkeypatch, tmp_path):
    import wandb

    calls: list[dict] = []

    def spy(**kwargs):
        calls.append(kwargs)
        raise _Stopped()

    monkeypatch.setattr(wandb, "init", spy)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setattr(sys, "argv", sys.argv[:1])  # the CLI rewrites sys.argv; give it back afterwards
    monkeypatch.chdir(ROOT)
    return calls


def _fit_until_wandb_init(argv: list[str], root: Path) -> None:
    with pytest.raises(_Stopped):
        run_lightning_cli([*argv, f"--trainer.default_root_dir={root}", "--trainer.max_steps=1"])


def test_offline_false_in_the_config_hands_online_to_wandb_init(init_calls, tmp_path):
    _fit_until_wandb_init(["fit", "--config", "experiments/debug_cpu.yaml", WANDB,
                           "--trainer.logger.offline=false", "--run_name=online-run"], tmp_path)
    assert [c["mode"] for c in init_calls] == ["online"]
    assert init_calls[0]["name"] == "online-run" and init_calls[0]["dir"] == str(tmp_path / "online-run")


def test_a_logger_that_says_nothing_stays_offline(init_calls, tmp_path):
    _fit_until_wandb_init(["fit", "--config", "experiments/debug_cpu.yaml", WANDB], tmp_path)
    assert [c["mode"] for c in init_calls] == ["offline"]


def test_an_explicit_wandb_mode_in_the_environment_is_honoured(init_calls, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    _fit_until_wandb_init(["fit", "--config", "experiments/debug_cpu.yaml", WANDB,
                           "--trainer.logger.offline=false"], tmp_path)
    assert [c["mode"] for c in init_calls] == ["offline"]


def test_a_sweep_trial_command_from_the_committed_yaml_goes_online(init_calls, tmp_path):
    """What `wandb agent` runs for sweeps/lr_lora_rank.yaml (base.yaml swapped for the CPU debug config)."""
    spec = SweepSpec.load(ROOT / "sweeps" / "lr_lora_rank.yaml")
    command = spec.expand({"model.optim.lora_lr": 1e-4, "model.model.llm.lora.r": 8}, interpreter="python")
    argv = [("experiments/debug_cpu.yaml" if w == "experiments/base.yaml" else w) for w in cli_argv(command)]
    assert "--trainer.logger.offline=false" in argv
    _fit_until_wandb_init(argv, tmp_path)
    assert [c["mode"] for c in init_calls] == ["online"]


def test_mode_rule_environment_then_config_then_offline():
    logger = {"class_path": "lightning.pytorch.loggers.WandbLogger", "init_args": {}}
    assert said_mode(logger) is None and resolve_mode(None, {}) == "offline"
    assert said_mode({**logger, "init_args": {"offline": False}}) == "online"
    assert said_mode({**logger, "init_args": {"offline": True}}) == "offline"
    assert said_mode({**logger, "init_args": {"mode": "disabled", "offline": False}}) == "disabled"
    assert resolve_mode("online", {"WANDB_MODE": "dryrun"}) == "offline"
    assert resolve_mode("offline", {"WANDB_MODE": "online"}) == "online"
    assert said_mode([{"class_path": "lightning.pytorch.loggers.CSVLogger"}, {**logger, "init_args": {
        "offline": False}}]) == "online"
