"""(c) Tiny-model training samples/s, bucketed real length vs naive pad-to-30-s, with loss parity.

Speed: the project's path (duration-bucketed batches, encoder on the batch's real length) against the
naive one (random batches, every clip's encoder input padded to 30 s = 3000 mel frames). Both run the
real Lightning fit loop (SpeechLMModule.training_step, backward, AdamW) from the same initial weights;
each path's batches are read beforehand (the loader is benchmark (b)), so on a 2-core machine the
training step is not measured against dataloader workers competing for the same cores. The first step
(start-up) is not timed.
Parity: the naive path is run again on the bucketed run's exact batches; the padding is masked, so the
per-step losses must agree (<= 1e-3): the speed-up changes the cost, not the model.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from bench_common import Scale, duration_mix, source, tiny_config, tokenizer_and_spec, write_mix_shards
from bench_loader import plan_loader

from callbacks.telemetry import TelemetryCallback
from paralm.data.batch import Batch
from paralm.data.collate import Collator
from paralm.lit_module import SpeechLMModule
from paralm.optim import OptimConfig

NAIVE_FRAMES = 3000  # 30 s of 10-ms mel frames


class PadFeaturesTo30Collator(Collator):
    """Encoder input padded to 30 s (3000 frames); real lengths kept, so the padding is masked."""

    def collate(self, items) -> tuple[Batch, int]:
        batch, missing = super().collate(items)
        batch.features = F.pad(batch.features, (0, max(0, NAIVE_FRAMES - batch.features.shape[-1])))
        return batch, missing


class Replay:
    """Batches read beforehand, served as one loader (a plain list would mean several loaders)."""

    def __init__(self, batches: list[Batch]) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class LossRecorder(pl.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def fit(cfg, loader, steps: int, seed: int = 0) -> tuple[list[float], dict]:
    """Train `steps` steps from seeded weights on the loader's first batches; (losses, telemetry of 2..steps)."""
    batches = [batch for _, batch in zip(range(steps), loader, strict=False)]
    torch.manual_seed(seed)
    module = SpeechLMModule(cfg, optim=OptimConfig(projector_lr=1e-3, lora_lr=1e-3, warmup_steps=0))
    losses, telemetry = LossRecorder(), TelemetryCallback(log_every_n_steps=max(1, steps - 1), skip_first_steps=1)
    trainer = pl.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         callbacks=[losses, telemetry], num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=Replay(batches))
    return losses.losses, dict(telemetry.last_metrics)


def run(scale: Scale, workdir: Path, seed: int = 0) -> dict:
    shards = Path(workdir) / "loader_shards"
    if not (shards / "index.json").is_file():
        write_mix_shards(shards, duration_mix(scale.loader_clips, seed + 1))
    cfg = tiny_config()
    tok, spec = tokenizer_and_spec(cfg)
    specs, steps = [source(shards)], scale.train_steps + 1
    real_losses, real = fit(cfg, plan_loader(specs, Collator(tok, spec), 64, scale.workers, seed), steps)
    _, naive = fit(cfg, plan_loader(specs, PadFeaturesTo30Collator(tok, spec), 1, scale.workers, seed), steps)
    twin_losses, _ = fit(cfg, plan_loader(specs, PadFeaturesTo30Collator(tok, spec), 64, scale.workers, seed), steps)
    gap = max(abs(a - b) for a, b in zip(real_losses, twin_losses, strict=True))
    ratio = real["perf/samples_per_s"] / naive["perf/samples_per_s"]
    return {
        "real": real, "naive": naive, "ratio": ratio, "loss_gap": gap,
        "rows": [
            ("bucketed real length, training samples/s", f"{real['perf/samples_per_s']:.2f}"),
            ("naive (random batches, encoder input padded to 30 s), samples/s", f"{naive['perf/samples_per_s']:.2f}"),
            ("ratio (target >= 3x)", f"{ratio:.2f}x"),
            (f"max abs loss difference over {steps} steps on the same batches (target <= 1e-3)", f"{gap:.2e}"),
            ("MFU share of measured CPU matmul peak (bucketed / naive)",
             f"{real['perf/mfu']:.3f} / {naive['perf/mfu']:.3f}"),
            ("padding efficiency of FLOPs (bucketed / naive)",
             f"{real['perf/padding_efficiency']:.2f} / {naive['perf/padding_efficiency']:.2f}"),
        ],
        "pass": ratio >= 3.0 and gap <= 1e-3,
    }
