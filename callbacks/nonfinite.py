"""Guard against non-finite steps: a NaN batch or an inf loss must never reach the weights.

The decision is taken in `on_before_optimizer_step`, after backward and before the update, from the
loss of every micro-batch since the last update (seen in `on_before_backward`) and the gradients.
Gradients catch every way a step goes bad (NaN inputs, overflowing activations); the loss catches an
inf loss whose gradients happen to stay finite. All ranks run backward and agree on one verdict (an
all-reduce of the flag; DDP gradients are already averaged), where skipping backward on one rank would
hang and skipping the update on one rank would let the replicas drift apart.

- `skip`: drop the gradients (set to None), so AdamW leaves every parameter and its moments untouched;
  the step still counts (global step, LR schedule, data position advance) and is counted here.
- `halt`: stop the run with exit code 4 before the update; the checkpoints written so far are good.

Counters live in the callback's state, saved in checkpoints, so a resumed run continues them.
With `precision: 16-mixed` the gradient scaler already skips overflowing steps (overflow is part of
how it tunes the loss scale), so the guard stands aside.
"""

from __future__ import annotations

import logging

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from paralm.fault.exits import EXIT_NONFINITE_HALT, FaultExit

log = logging.getLogger(__name__)
POLICIES = ("skip", "halt")
KEEP_STEPS = 100  # step numbers remembered in the state (the count is exact beyond that)


class NonFiniteHalt(FaultExit):
    """Training stopped on a non-finite loss or gradient (policy halt or too many skips in a row)."""

    exit_code = EXIT_NONFINITE_HALT


def grads_nonfinite(params: list[torch.Tensor]) -> torch.Tensor | None:
    """0-dim bool tensor: does any gradient hold NaN/inf (one reduction, no host sync); None without grads."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return None
    return ~torch.isfinite(torch.nn.utils.get_total_norm(grads, norm_type=2.0))


class NonFiniteGuard(Callback):
    """Skip (and count) or halt on optimizer steps whose loss or gradients hold NaN or inf.

    Args:
        policy: skip | halt.
        max_consecutive: with skip, halt anyway after this many non-finite steps in a row (a run that
            has diverged is not trained on forever); 0 = no limit.
    """

    def __init__(self, policy: str = "skip", max_consecutive: int = 20) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown non-finite policy {policy!r}; valid: {', '.join(POLICIES)}")
        if max_consecutive < 0:
            raise ValueError(f"max_consecutive must be >= 0, got {max_consecutive}")
        self.policy = policy
        self.max_consecutive = int(max_consecutive)
        self.skipped = 0
        self.consecutive = 0
        self.skipped_steps: list[int] = []
        self._loss_bad: torch.Tensor | None = None  # any non-finite loss since the last update

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        bad = (~torch.isfinite(loss.detach())).any()
        self._loss_bad = bad if self._loss_bad is None else self._loss_bad | bad

    def _step_is_bad(self, trainer, params: list[torch.Tensor]) -> bool:
        flags = [f for f in (grads_nonfinite(params), self._loss_bad) if f is not None]
        self._loss_bad = None
        if not flags:
            return False
        bad = torch.stack([f.to(flags[0].device) for f in flags]).any().float()
        if getattr(trainer, "world_size", 1) > 1:
            bad = trainer.strategy.reduce(bad, reduce_op="max")
        return bool(bad.item())

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        if getattr(trainer.precision_plugin, "scaler", None) is not None:
            self._loss_bad = None
            return
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if not self._step_is_bad(trainer, params):
            self.consecutive = 0
            return
        step = trainer.global_step + 1  # the step this update would complete
        too_many = self.max_consecutive and self.consecutive + 1 >= self.max_consecutive
        if self.policy == "halt" or too_many:
            why = "policy halt" if self.policy == "halt" else f"{self.consecutive + 1} non-finite steps in a row"
            raise NonFiniteHalt(
                f"non-finite loss or gradient at step {step} ({why}); the update was not applied and nothing "
                f"non-finite was saved; last checkpoint: {last_checkpoint(trainer) or 'none yet'}")
        for p in params:
            p.grad = None
        self.skipped += 1
        self.consecutive += 1
        if len(self.skipped_steps) < KEEP_STEPS:
            self.skipped_steps.append(step)
        log.warning("non-finite loss or gradient at step %d: update skipped (%d skipped so far)", step, self.skipped)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        pl_module.log("train/nonfinite_skipped", float(self.skipped), on_step=True, on_epoch=False,
                      batch_size=1)

    def state_dict(self) -> dict:
        return {"skipped": self.skipped, "consecutive": self.consecutive, "skipped_steps": list(self.skipped_steps)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.skipped = int(state_dict["skipped"])
        self.consecutive = int(state_dict.get("consecutive", 0))
        self.skipped_steps = [int(s) for s in state_dict.get("skipped_steps", [])]


def last_checkpoint(trainer: pl.Trainer) -> str:
    """The most recent checkpoint this run wrote, if Lightning knows one."""
    callback = trainer.checkpoint_callback
    if callback is None:
        return ""
    return getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "") or ""
