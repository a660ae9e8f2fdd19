"""LightningCLI for `paralm fit | validate | test | predict`.

Model and data are fixed classes (`SpeechLMModule`, `MixtureDataModule`), so every option is a typed,
documented argument. After instantiation the CLI hands the model's tokenizer and `AudioTokenSpec` to the
datamodule: the data layer never imports the model, it is told how many audio tokens a clip becomes.
"""

from __future__ import annotations

import os
import sys

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from paralm.checkpointing import AtomicCheckpointIO
from paralm.data.datamodule import MixtureDataModule
from paralm.lit_module import SpeechLMModule
from paralm.secrets import refuse_secrets_in_args


class ParalmCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--run_name", type=str, default="", help="Name of the run (logger and output folder).")

    def before_instantiate_classes(self) -> None:
        refuse_secrets_in_args(self.config)

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        if self.datamodule is not None:
            self.datamodule.attach(self.model.tokenizer, self.model.audio_token_spec)


def trainer_defaults() -> dict:
    return {
        "plugins": [{"class_path": f"{AtomicCheckpointIO.__module__}.{AtomicCheckpointIO.__name__}"}],
        "default_root_dir": os.environ.get("PARALM_RUNS_DIR", "runs"),
    }


def run_lightning_cli(argv: list[str]) -> int:
    os.environ.setdefault("WANDB_MODE", "offline")  # W&B stays offline unless a config says online
    sys.argv = sys.argv[:1]  # argv is passed explicitly; LightningCLI warns when both are set
    ParalmCLI(
        SpeechLMModule,
        MixtureDataModule,
        args=argv,
        trainer_defaults=trainer_defaults(),
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        parser_kwargs={"description": "paralm: train and evaluate Speech-LLMs (LightningCLI)"},
    )
    return 0
