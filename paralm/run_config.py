"""Save the resolved config inside the run's own folder and put all of it into the logger's run config.

Why: Lightning's SaveConfigCallback writes `config.yaml` into the logger's save_dir (shared by every run
logged there, each overwriting the last), and the W&B run config held only what the LightningModule
saved (model, optim, generation, runtime): none of `data.*` or `trainer.*`, which are exactly what
ablations and sweeps vary. Here `config.yaml` goes to `<run folder>/config.yaml` (the trainer's
default_root_dir, see paralm/run_folder.py) and every logger receives the whole resolved config:
`data`, `trainer`, `seed_everything`, `run_name`, `run_group`, ..., with the model section under the
same keys the module's hparams use (`model`, `optim`, `generation`, `runtime`), so neither overwrites
the other with something different.
"""

from __future__ import annotations

import os
from typing import Any

import yaml
from lightning.pytorch.cli import SaveConfigCallback

SKIPPED = ("config", "print_config")  # the --config file list and print flags are not settings of the run


def loggable_config(dumped: dict[str, Any]) -> dict[str, Any]:
    """The parsed config of one subcommand, shaped for a logger's run config (see module docstring)."""
    out = {k: v for k, v in dumped.items() if k not in SKIPPED and k != "model"}
    model = dumped.get("model") or {}
    if isinstance(model, dict):
        out.update({k: v for k, v in model.items() if k not in ("class_path", "init_args")})
        out.update(model.get("init_args") or {})
    return out


class RunConfigSaver(SaveConfigCallback):
    """SaveConfigCallback that writes `<default_root_dir>/config.yaml` and logs the full config."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.already_saved:
            return
        if trainer.is_global_zero:
            folder = str(trainer.default_root_dir)
            os.makedirs(folder, exist_ok=True)
            self.parser.save(self.config, os.path.join(folder, self.config_filename), skip_none=False,
                             overwrite=True, multifile=self.multifile)
            self.save_config(trainer, pl_module, stage)
            self.already_saved = True
        self.already_saved = trainer.strategy.broadcast(self.already_saved)

    def save_config(self, trainer, pl_module, stage: str) -> None:
        dumped = yaml.safe_load(self.parser.dump(self.config, skip_none=False, skip_link_targets=False))
        params = loggable_config(dumped or {})
        for logger in trainer.loggers:
            logger.log_hyperparams(params)
