"""The trial side of `paralm sweep`: metric history out, stop requests in, checkpoints in the trial folder.

`paralm sweep` adds this callback to every trial's command line (`--trainer.callbacks+=...`) with the
trial's folder. It

- appends the validation metrics to `metrics.jsonl` after every validation (rank 0; one fsync'd line
  each), which the driver reads to rank trials and to make hyperband decisions while the trial runs;
- stops training at the end of a validation once the driver has written the `STOP` file (all ranks
  agree through one all-reduce, so a multi-process trial stops together);
- points every ModelCheckpoint at `<trial>/checkpoints` and makes the first one keep `last.ckpt`, so
  trials never overwrite each other's checkpoints and an interrupted trial can resume from its own;
- writes `ranks/rank<r>.json`: the swept values as this rank's instantiated objects hold them (a check
  that the values reached every rank, not only the one W&B talks to).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.trainer.states import TrainerFn

from paralm.formats.jsonl import JsonlAppender, write_text_atomic
from paralm.runs.sweep.state import CHECKPOINT_DIR, METRICS_FILE, RANKS_DIR, STOP_FILE, TRIAL_FILE

log = logging.getLogger(__name__)
UNRESOLVED = object()


def _walk(obj: Any, part: str) -> Any:
    """One step of a dotted key: attribute, mapping key, or entry of a module's saved hyperparameters."""
    if isinstance(obj, dict):
        return obj.get(part, UNRESOLVED)
    if part and not part.startswith("_") and hasattr(obj, part) and not callable(getattr(obj, part)):
        return getattr(obj, part)
    hparams = getattr(obj, "hparams", None)
    if isinstance(hparams, dict) and part in hparams:
        return hparams[part]
    return UNRESOLVED


def resolve_key(key: str, roots: dict[str, Any]) -> Any:
    """Value of a CLI key (`model.optim.lora_lr`) read from the live objects; UNRESOLVED if not found."""
    head, *rest = key.split(".")
    obj = roots.get(head, UNRESOLVED)
    for part in rest:
        if obj is UNRESOLVED:
            break
        obj = _walk(obj, part)
    return obj


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def _repair_tail(path: Path) -> None:
    """Drop a half-written last line (a trial killed mid-write) so appends start on a fresh line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        write_text_atomic(path, data[: data.rfind(b"\n") + 1].decode("utf-8"))


class SweepTrialCallback(Callback):
    """Connects a training run to the `paralm sweep` driver (see the module docstring).

    Args:
        trial_dir: the trial's run folder; `trial.json` (written by the driver) names the swept keys.
    """

    def __init__(self, trial_dir: str) -> None:
        self.trial_dir = Path(trial_dir)
        trial_file = self.trial_dir / TRIAL_FILE
        self.trial = json.loads(trial_file.read_text()) if trial_file.exists() else {}
        self._appender: JsonlAppender | None = None

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.trial.get("params", {}))

    # ---- setup: checkpoints, rank view, logger --------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._redirect_checkpoints(trainer)
        self._write_rank_view(trainer, pl_module)
        if trainer.is_global_zero:
            _repair_tail(self.trial_dir / METRICS_FILE)
            if trainer.logger is not None and self.trial:
                trainer.logger.log_hyperparams({"sweep": {k: self.trial.get(k) for k in
                                                          ("sweep", "trial", "config_hash", "params")}})

    def _redirect_checkpoints(self, trainer: pl.Trainer) -> None:
        target = str(self.trial_dir / CHECKPOINT_DIR)
        callbacks = [cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint)]
        if not callbacks:
            log.warning("sweep trial %s has no ModelCheckpoint: an interrupted trial restarts from scratch",
                        self.trial_dir.name)
        for i, cb in enumerate(callbacks):
            if cb.dirpath and os.path.realpath(cb.dirpath) != os.path.realpath(target):
                log.info("sweep trial: checkpoints go to %s instead of %s", target, cb.dirpath)
            cb.dirpath = target
            if i == 0 and not cb.save_last:
                cb.save_last = True

    def _write_rank_view(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        roots = {"model": pl_module, "data": trainer.datamodule, "trainer": trainer}
        parsed = next((cb.config for cb in trainer.callbacks if isinstance(cb, SaveConfigCallback)), None)
        seen, source = {}, {}
        for key in self.params:
            value = resolve_key(key, roots)
            source[key] = "object"
            if value is UNRESOLVED and parsed is not None:
                value, source[key] = parsed.get(key), "parsed"
            seen[key] = _jsonable(value) if value is not UNRESOLVED else None
        view = {"rank": trainer.global_rank, "world_size": trainer.world_size, "params": seen, "source": source}
        write_text_atomic(self.trial_dir / RANKS_DIR / f"rank{trainer.global_rank}.json", json.dumps(view) + "\n")

    # ---- after each validation: history out, stop request in ------------------------------------
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        if trainer.is_global_zero:
            self._append_metrics(trainer)
        requested = (self.trial_dir / STOP_FILE).exists()
        if trainer.strategy.reduce_boolean_decision(requested, all=False):
            if trainer.is_global_zero:
                log.info("sweep trial %s: stopped early at step %d (hyperband)", self.trial_dir.name,
                         trainer.global_step)
            trainer.should_stop = True

    def _append_metrics(self, trainer: pl.Trainer) -> None:
        row: dict[str, Any] = {"_step": int(trainer.global_step), "epoch": int(trainer.current_epoch)}
        for name, value in trainer.callback_metrics.items():
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                number = float(value.item())
                row[name] = number if math.isfinite(number) else None
        if self._appender is None:
            self._appender = JsonlAppender(self.trial_dir / METRICS_FILE)
        self._appender.append(row)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._appender is not None:
            self._appender.close()
            self._appender = None
