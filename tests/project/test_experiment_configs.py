"""Every shipped experiment YAML parses through the real CLI parser (no model folders needed)."""

from pathlib import Path

import pytest
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningArgumentParser

from paralm.data.datamodule import MixtureDataModule
from paralm.lit_module import SpeechLMModule

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted(p for p in (ROOT / "experiments").rglob("*.yaml") if not p.name.startswith("ablation"))


def fit_parser() -> LightningArgumentParser:
    from jsonargparse import ActionConfigFile

    parser = LightningArgumentParser(exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_lightning_class_args(SpeechLMModule, "model")
    parser.add_lightning_class_args(MixtureDataModule, "data")
    parser.add_lightning_class_args(Trainer, "trainer")
    parser.add_argument("--seed_everything", type=int | bool, default=True)
    parser.add_argument("--run_name", type=str, default="")
    return parser


def test_experiment_folder_has_configs():
    names = {p.name for p in EXPERIMENTS}
    assert {"base.yaml", "debug_cpu.yaml"} <= names


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_experiment_yaml_parses(path):
    parser = fit_parser()
    cfg = parser.parse_path(str(path), defaults=True)
    assert cfg.model.model.encoder.name
    assert cfg.model.model.llm.trainable in ("frozen", "lora", "full")


def test_overlay_changes_only_what_it_names(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("model:\n  model:\n    projector:\n      stack: 8\n")
    parser = fit_parser()
    base = parser.parse_path(str(ROOT / "experiments/debug_cpu.yaml"), defaults=True)
    merged = parser.parse_args(["--config", str(ROOT / "experiments/debug_cpu.yaml"), "--config", str(overlay)])
    assert merged.model.model.projector.stack == 8
    assert base.model.model.projector.stack != 8
    assert merged.model.model.llm == base.model.model.llm
