"""Checkpoint at the next step boundary after a preemption signal, then exit with 128 + signal.

Where it acts: after a training step (`on_train_batch_end`, the same point ModelCheckpoint saves at,
so the resumed run continues exactly as an uninterrupted one), and, on a single process, after each
validation batch (validation changes no weights, so the checkpoint holds the last step's state). With
several ranks every decision is agreed by an all-reduce at points all ranks reach together (each
training step, the end of validation), so all ranks save the same step and stop together.

Lightning's own handlers: Lightning installs a SIGTERM handler (and, under SLURM with auto-requeue, a
SIGUSR1 handler that saves an `hpc_ckpt_*.ckpt` from inside the signal handler and runs `scontrol
requeue`). This callback takes those signals over when training starts and gives them back when it ends,
so the two never both act on one signal; `requeue_signals` provides the requeue part. Outside `fit`
(validate, test) Lightning's handlers are left alone.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn

from paralm.fault.exits import FaultExit, preempted_exit_code
from paralm.fault.preemption import (
    GraceWatchdog,
    SignalFlag,
    parse_signals,
    requeue_slurm_job,
    signal_name,
    slurm_job_id,
)

log = logging.getLogger(__name__)


class Preempted(FaultExit):
    """Training stopped on a preemption signal after writing a checkpoint."""


class PreemptionCheckpoint(Callback):
    """On a preemption signal: save a checkpoint at the next step boundary and exit with 128 + signal.

    Args:
        signals: signal names treated as a preemption notice, from SIGTERM, SIGUSR1, SIGUSR2, SIGHUP,
            SIGINT (None: SIGTERM and SIGUSR1).
        grace_s: seconds from the signal until the checkpoint must be written; past it the process exits
            with 124 and writes nothing new (earlier complete checkpoints stay valid).
        dirpath: folder of the preemption checkpoint; None: the ModelCheckpoint folder, else
            <default_root_dir>/checkpoints (`--resume auto` looks in both).
        requeue_signals: after these signals a SLURM job requeues itself (`scontrol requeue`, rank 0
            only) once the checkpoint is written; nothing happens outside SLURM (None: SIGUSR1).
    """

    def __init__(
        self,
        signals: list[str] | None = None,
        grace_s: float = 60.0,
        dirpath: str | None = None,
        requeue_signals: list[str] | None = None,
    ) -> None:
        self.signals = parse_signals(signals if signals is not None else ["SIGTERM", "SIGUSR1"])
        self.requeue_signals = parse_signals(requeue_signals if requeue_signals is not None else ["SIGUSR1"])
        if grace_s <= 0:
            raise ValueError(f"grace_s must be > 0 seconds, got {grace_s}")
        self.grace_s = float(grace_s)
        self.dirpath = dirpath
        self.flag: SignalFlag | None = None
        self.watchdog: GraceWatchdog | None = None
        self._in_validation = False

    @property
    def resume_dirpath(self) -> str | None:
        """The folder `--resume auto` should also search (None: the ModelCheckpoint folder is used)."""
        return self.dirpath

    # ---- taking the signals over while fitting -------------------------------------------------------
    def _take_over(self, trainer: pl.Trainer) -> None:
        if trainer.state.fn != TrainerFn.FITTING:
            return
        if self.flag is None:
            self.flag = SignalFlag(self.signals)
            self.watchdog = GraceWatchdog(self.flag, self.grace_s)
        if self.flag.installed:
            return
        env = getattr(trainer.strategy, "cluster_environment", None)
        if isinstance(env, SLURMEnvironment) and env.auto_requeue:
            log.info("PreemptionCheckpoint handles %s during fit; Lightning's SLURM auto-requeue handler is "
                     "set aside (requeue after: %s)", ", ".join(map(signal_name, self.signals)),
                     ", ".join(map(signal_name, self.requeue_signals)) or "none")
        self.flag.install()
        self.watchdog.start()

    def on_sanity_check_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._take_over(trainer)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._take_over(trainer)

    def _give_back(self) -> None:
        if self.watchdog is not None:
            self.watchdog.stop()
        if self.flag is not None:
            self.flag.restore()
        self.flag, self.watchdog = None, None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._give_back()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._give_back()

    # ---- acting at step boundaries -------------------------------------------------------------------
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        self._maybe_stop(trainer, synced=True)

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if trainer.world_size == 1 and not trainer.sanity_checking:  # ranks may run different batch counts
            self._in_validation = True
            try:
                self._maybe_stop(trainer, synced=False)
            finally:
                self._in_validation = False

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._maybe_stop(trainer, synced=True)

    def _agreed_signal(self, trainer: pl.Trainer, synced: bool) -> int:
        local = self.flag.signum if self.flag is not None and self.flag.signum is not None else 0
        if not synced or trainer.world_size == 1:
            return local
        value = torch.tensor(float(local), device=trainer.strategy.root_device)
        return int(trainer.strategy.reduce(value, reduce_op="max").item())

    def _maybe_stop(self, trainer: pl.Trainer, synced: bool) -> None:
        if self.flag is None or trainer.state.fn != TrainerFn.FITTING:
            return
        signum = self._agreed_signal(trainer, synced)
        if not signum:
            return
        path = self.checkpoint_path(trainer)
        trainer.save_checkpoint(path, weights_only=False)
        self.watchdog.disarm()
        waited = self.flag.seconds_since()
        note = self._requeue(trainer) if signum in self.requeue_signals else ""
        raise Preempted(
            f"preempted by {signal_name(signum)}: wrote {path} at step {trainer.global_step}, "
            f"{waited:.1f}s after the signal{note}; resume with --resume auto",
            exit_code=preempted_exit_code(signum),
        )

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if self._in_validation:
            rewind_interrupted_validation(checkpoint)

    @staticmethod
    def _requeue(trainer: pl.Trainer) -> str:
        if not trainer.is_global_zero:
            return ""
        try:
            job = slurm_job_id()
        except ValueError as err:  # the checkpoint is written; say why no requeue happened
            return f"; no requeue: {err}"
        return f"; {requeue_slurm_job(job)}" if job is not None else ""

    def checkpoint_path(self, trainer: pl.Trainer) -> Path:
        folder = self.dirpath or default_dir(trainer)
        name = f"preempted-epoch={trainer.current_epoch}-step={trainer.global_step}.ckpt"
        return Path(folder) / name


def default_dir(trainer: pl.Trainer) -> str:
    """The ModelCheckpoint folder if there is one, else <default_root_dir>/checkpoints."""
    callback = trainer.checkpoint_callback
    folder = getattr(callback, "dirpath", None)
    return str(folder) if folder else str(Path(trainer.default_root_dir) / "checkpoints")


VAL_PROGRESS = ("loops", "fit_loop", "epoch_loop.val_loop.batch_progress")


def rewind_interrupted_validation(checkpoint: dict) -> bool:
    """Make the resumed run repeat the interrupted validation from its first batch.

    Lightning skips the validation of a step it resumes at unless the checkpoint says the run stopped
    inside a validation batch. Saved after a validation batch, the progress counters would say the
    opposite and the validation (its metrics, and any evaluation triggered by it) would be lost, so the
    counters of this validation are set back to "inside its first batch". Returns False, changing
    nothing, if the checkpoint does not hold the counters this Lightning version is known to write.
    """
    progress = checkpoint
    for key in VAL_PROGRESS:
        progress = progress.get(key) if isinstance(progress, dict) else None
    if not isinstance(progress, dict) or not {"current", "total"} <= progress.keys():
        log.warning("cannot mark the interrupted validation for a rerun: unknown checkpoint loop layout")
        return False
    inside_first_batch = {"ready": 1, "started": 1, "processed": 0, "completed": 0}
    current, total = progress["current"], progress["total"]
    for key, value in inside_first_batch.items():
        total[key] = total[key] - current[key] + value
        current[key] = value
    return True
