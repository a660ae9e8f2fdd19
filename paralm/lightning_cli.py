"""LightningCLI for `paralm fit | validate | test | predict`.

Model and data are fixed classes (`SpeechLMModule`, `MixtureDataModule`), so every option is a typed,
documented argument. After instantiation the CLI hands the model's tokenizer and `AudioTokenSpec` to the
datamodule: the data layer never imports the model, it is told how many audio tokens a clip becomes.
"""

from __future__ import annotations

import os
import sys

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from callbacks.preemption import PreemptionCheckpoint
from paralm.checkpointing import AtomicCheckpointIO
from paralm.data.datamodule import MixtureDataModule
from paralm.fault.exits import FaultExit
from paralm.fault.nonfinite import NonFiniteGuard
from paralm.fault.resume import MODES as RESUME_MODES
from paralm.fault.resume import checkpoint_folders, resolve_resume
from paralm.lit_module import SpeechLMModule
from paralm.secrets import SecretInConfigError, refuse_secrets_in_args


class ParalmCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--run_name", type=str, default="", help="Name of the run (logger and output folder).")
        parser.add_argument("--resume", type=str, default="none",
                            help=f"{' | '.join(RESUME_MODES)} | PATH: which checkpoint to continue from "
                                 "(auto: newest valid one, exit 3 if none; see docs/reliability.md).")
        parser.add_argument("--resume_dir", type=str, default=None,
                            help="Folder --resume auto searches (default: the ModelCheckpoint dirpath).")
        parser.add_lightning_class_args(PreemptionCheckpoint, "preemption")
        parser.add_lightning_class_args(NonFiniteGuard, "nonfinite")

    def before_instantiate_classes(self) -> None:
        refuse_secrets_in_args(self.config)

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        if self.datamodule is not None:
            self.datamodule.attach(self.model.tokenizer, self.model.audio_token_spec)
        if not isinstance(self.trainer.strategy.checkpoint_io, AtomicCheckpointIO):
            raise ValueError("trainer.plugins must include paralm.checkpointing.AtomicCheckpointIO (atomic, "
                             "verified checkpoints); a plugins list in a config replaces the default one")
        self._apply_resume()

    def _apply_resume(self) -> None:
        """Map --resume onto the subcommand's ckpt_path (see paralm/fault/resume.py)."""
        sub = self.config_init[self.subcommand]
        mode = sub.get("resume") or "none"
        if mode == "none":
            return
        if sub.get("ckpt_path"):
            raise ValueError(f"give either --ckpt_path or --resume, not both (got {sub.ckpt_path!r} and {mode!r})")
        sub.ckpt_path = resolve_resume(mode, checkpoint_folders(self.trainer, sub.get("resume_dir")))


def trainer_defaults() -> dict:
    return {
        "plugins": [{"class_path": f"{AtomicCheckpointIO.__module__}.{AtomicCheckpointIO.__name__}"}],
        "default_root_dir": os.environ.get("PARALM_RUNS_DIR", "runs"),
    }


def run_lightning_cli(argv: list[str]) -> int:
    os.environ.setdefault("WANDB_MODE", "offline")  # W&B stays offline unless a config says online
    # Lightning's DDP launcher starts ranks > 0 by re-running sys.argv, so it must hold this very command;
    # LightningCLI then parses sys.argv itself (args=None: it warns when both are given).
    sys.argv = sys.argv[:1] + list(argv)
    try:
        ParalmCLI(
            SpeechLMModule,
            MixtureDataModule,
            args=None,
            trainer_defaults=trainer_defaults(),
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            parser_kwargs={"description": "paralm: train and evaluate Speech-LLMs (LightningCLI)"},
        )
    except FaultExit as stop:  # deliberate stops: one line and a documented exit code (paralm/fault/exits.py)
        print(f"paralm {argv[0] if argv else ''}: {stop}", file=sys.stderr)
        return stop.exit_code
    except SecretInConfigError as refused:  # a usage error; the message names the option, never the value
        print(f"paralm {argv[0] if argv else ''}: {refused}", file=sys.stderr)
        return 2
    return 0
