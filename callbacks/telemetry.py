"""TelemetryCallback: training throughput and MFU, logged every N training batches.

Why wall time between batch ends: it is what a run actually achieves, data loading and host overhead
included; a kernel-only timer would flatter a run that waits on its loader. Each window covers the
batches since the previous log; the first `skip_first_steps` batches (CUDA start-up, torch.compile) are
left out. On CUDA the device is synchronised at window edges only, so the timer costs nothing per step.

Logged (prefix "perf/"):
    samples_per_s, audio_seconds_per_s, tokens_per_s   all ranks together (this rank x world size;
                                                       the plan gives every rank the same batch count)
    tflops_per_s                                        useful model FLOP/s of this rank
    mfu                                                 useful FLOP/s / peak FLOP/s of one device
    mfu_frozen, mfu_trained, mfu_attention              its split (frozen weights: forward, plus input
                                                       gradients where a gradient flows; trained
                                                       weights: forward + backward; attention matmuls)
    padding_efficiency                                  useful / executed (padded) FLOPs
FLOPs come from paralm.perf.flops (sizes read from the model); filler items (`meta["is_pad"]`) are
not counted as samples.
"""

from __future__ import annotations

import time

import lightning.pytorch as pl
import torch

from paralm.data.batch import Batch
from paralm.perf.flops import FlopModel, StepFlops
from paralm.perf.peak import peak_flops


class TelemetryCallback(pl.Callback):
    """Throughput (samples, audio seconds, tokens per second) and MFU of training.

    Args:
        log_every_n_steps: training batches per measurement window.
        peak_flops: peak FLOP/s of one device for MFU; None = the published dense bf16 figure for the
            device name (H100 989e12, A100 312e12, ...) or, on CPU, a measured fp32 matmul rate.
        skip_first_steps: batches before the first window starts (start-up, compilation).
        prefix: metric name prefix.
    """

    def __init__(self, log_every_n_steps: int = 10, peak_flops: float | None = None,
                 skip_first_steps: int = 1, prefix: str = "perf/") -> None:
        if log_every_n_steps < 1:
            raise ValueError(f"log_every_n_steps must be >= 1, got {log_every_n_steps}")
        if skip_first_steps < 0:
            raise ValueError(f"skip_first_steps must be >= 0, got {skip_first_steps}")
        self.every = int(log_every_n_steps)
        self.peak_override = peak_flops
        self.skip = int(skip_first_steps)
        self.prefix = prefix
        self.peak: float | None = None
        self.peak_source = ""
        self.last_metrics: dict[str, float] = {}
        self._flop_model: FlopModel | None = None
        self._reset()
        self._batches_seen = 0
        self._window_start: float | None = None

    def _reset(self) -> None:
        self._n = 0
        self._samples = 0
        self._audio = 0.0
        self._tokens = 0
        self._useful = StepFlops()
        self._padded = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.peak, self.peak_source = peak_flops(pl_module.device, self.peak_override)
        self._flop_model = FlopModel(pl_module.net)
        self._batches_seen = 0
        self._window_start = self._now(pl_module) if self.skip == 0 else None
        self._reset()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if not isinstance(batch, Batch):
            raise TypeError(f"TelemetryCallback needs paralm Batch objects, got {type(batch).__name__}")
        self._batches_seen += 1
        if self._batches_seen <= self.skip:
            if self._batches_seen == self.skip:
                self._window_start = self._now(pl_module)
            return
        self._account(batch)
        if self._n >= self.every:
            self.last_metrics = self._close_window(trainer, pl_module)
            if trainer.is_global_zero:  # straight to the loggers: one row per window, at this step
                for logger in trainer.loggers:
                    logger.log_metrics(self.last_metrics, step=trainer.global_step)

    def _account(self, batch: Batch) -> None:
        real = [not m.get("is_pad", False) for m in batch.meta] if batch.meta else [True] * len(batch)
        self._n += 1
        self._samples += sum(real)
        if batch.audio_seconds is not None:
            self._audio += float((batch.audio_seconds.cpu() * torch.tensor(real)).sum())
        self._tokens += int(batch.attention_mask.sum())
        self._useful = self._useful.add(self._flop_model.step(batch, padded=False))
        self._padded += self._flop_model.step(batch, padded=True).total

    @staticmethod
    def _now(pl_module: pl.LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def _close_window(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        now = self._now(pl_module)
        seconds = max(now - self._window_start, 1e-9)
        world = max(1, int(trainer.world_size))
        useful, p = self._useful, self.prefix
        metrics = {
            f"{p}samples_per_s": world * self._samples / seconds,
            f"{p}audio_seconds_per_s": world * self._audio / seconds,
            f"{p}tokens_per_s": world * self._tokens / seconds,
            f"{p}tflops_per_s": useful.total / seconds / 1e12,
            f"{p}mfu": useful.total / seconds / self.peak,
            f"{p}mfu_frozen": useful.frozen / seconds / self.peak,
            f"{p}mfu_trained": useful.trained / seconds / self.peak,
            f"{p}mfu_attention": useful.attention / seconds / self.peak,
            f"{p}padding_efficiency": useful.total / self._padded if self._padded else 1.0,
        }
        self._window_start = now
        self._reset()
        return metrics
