"""Test-only callbacks loaded by the `paralm fit` subprocesses of the fault tests (no tests here).

Referenced from configs as `class_path: faultcallbacks.X` (the runner in faultkit puts
tests/ on PYTHONPATH). Each records what a run did (every step's loss and keys, every validation) or
injects one fault at an exact step from inside the process, so runs are deterministic: a real
SIGKILL/SIGTERM/SIGUSR1 to the process (or its process group), a NaN batch, an inf loss, or death in
the middle of a checkpoint write.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class StepLog(Callback):
    """Appends {step, epoch, loss, keys} per training step to a JSONL file (flushed, so a kill loses nothing
    finished); a `{rank}` in the path gives each rank its own file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        rec = {"step": trainer.global_step, "epoch": trainer.current_epoch, "loss": float(loss),
               "keys": list(batch.keys)}
        with open(self.path.format(rank=trainer.global_rank), "a") as f:
            f.write(json.dumps(rec) + "\n")


class ValidationLog(Callback):
    """Appends {"validated_at": global step} to a JSONL file each time a (non-sanity) validation completes."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            with open(self.path, "a") as f:
                f.write(json.dumps({"validated_at": trainer.global_step}) + "\n")


class SignalAt(Callback):
    """Sends `signal` to this process (group: to its whole process group, i.e. every rank) during training
    step `step` (before its backward) or during the second validation batch of the validation run after
    step `step`; then sleeps `then_sleep_s`. With several ranks only rank 0 sends."""

    def __init__(self, step: int, signal: str = "SIGKILL", where: str = "backward", then_sleep_s: float = 0.0,
                 group: bool = False):
        if where not in ("backward", "validation"):
            raise ValueError(f"where must be backward|validation, got {where!r}")
        self.step, self.signum, self.where, self.then_sleep_s = step, _signum(signal), where, then_sleep_s
        self.group = group

    def _fire(self, trainer) -> None:
        if trainer.global_rank == 0:
            if self.group:
                os.killpg(os.getpgid(0), self.signum)
            else:
                os.kill(os.getpid(), self.signum)
        time.sleep(self.then_sleep_s)

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        if self.where == "backward" and trainer.global_step + 1 == self.step:
            self._fire(trainer)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if (self.where == "validation" and not trainer.sanity_checking and trainer.global_step == self.step
                and batch_idx == 1):
            self._fire(trainer)


def _signum(name: str) -> int:
    return int(getattr(signal, name))


class NanBatchAt(Callback):
    """Fills the audio features of the batches of the given steps with NaN."""

    def __init__(self, steps: list[int]) -> None:
        self.steps = set(steps)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step + 1 in self.steps:
            batch.features.fill_(float("nan"))


class InfLossAt(Callback):
    """Makes the training loss +inf at the given steps (adds inf, so its gradients stay finite: only the
    loss check can catch it). Wraps the module's training_step."""

    def __init__(self, steps: list[int]) -> None:
        self.steps = set(steps)

    def on_fit_start(self, trainer, pl_module) -> None:
        step_fn = pl_module.training_step

        def training_step(batch, batch_idx):
            loss = step_fn(batch, batch_idx)
            return loss + float("inf") if trainer.global_step + 1 in self.steps else loss

        pl_module.training_step = training_step


class DieInCheckpointWrite(Callback):
    """SIGKILLs the process while the checkpoint of `step` is being written.

    phase "data": half of the checkpoint bytes are in the temporary file (fsynced) when the process dies;
    phase "marker": the checkpoint is complete under its final name but its marker was never written.
    """

    def __init__(self, step: int, phase: str = "data") -> None:
        if phase not in ("data", "marker"):
            raise ValueError(f"phase must be data|marker, got {phase!r}")
        self.step, self.phase = step, phase

    def setup(self, trainer, pl_module, stage) -> None:
        import paralm.fault.checkpoint_io as ckpt

        real, tag = ckpt.atomic_write_bytes, f"step={self.step}.ckpt"

        def dying_write(path, data):
            name = Path(path).name
            if self.phase == "data" and name.endswith(tag):
                tmp = Path(path).with_name(f".{name}.tmp-{os.getpid()}")
                with open(tmp, "wb") as fh:
                    fh.write(data[: len(data) // 2])
                    fh.flush()
                    os.fsync(fh.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
            if self.phase == "marker" and name.endswith(tag + ckpt.MARKER_SUFFIX):
                os.kill(os.getpid(), signal.SIGKILL)
            real(path, data)

        ckpt.atomic_write_bytes = dying_write
