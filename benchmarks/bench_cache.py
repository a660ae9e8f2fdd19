"""(f) Cached encoder features vs online encoding, for a frozen Whisper-tiny-shaped encoder.

The whole training pipeline is timed (loader workers, collate, step), since the cache removes work on
both sides: no audio decoding or log-mel in the workers, no encoder forward in the step. Both runs use
the real integration: MixtureDataModule(feature_cache=...) makes the LightningModule's callback
(callbacks/encoder_cache.py) fill and attach the store at setup. The one-off cost (encoding every clip
once) and the per-run check that later runs pay (hashing audio bytes and encoder weights) are reported
beside the speed-up, with the loss parity.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning.pytorch as pl
import torch
from bench_common import (
    Scale,
    Timer,
    duration_mix,
    source,
    tiny_config,
    write_mix_shards,
)
from bench_train import LossRecorder

from callbacks.telemetry import TelemetryCallback
from paralm.data.datamodule import MixtureDataModule
from paralm.feature_store_fill import ensure_feature_cache
from paralm.lit_module import SpeechLMModule
from paralm.model.speech_lm import SpeechLM
from paralm.optim import OptimConfig


def _fit(cfg, shards: Path, steps: int, workers: int, cache: str | None, seed: int = 0) -> tuple[list[float], dict]:
    torch.manual_seed(seed)
    module = SpeechLMModule(cfg, optim=OptimConfig(projector_lr=1e-3, lora_lr=1e-3, warmup_steps=0))
    dm = MixtureDataModule(train_sources=[source(shards)], batch_size=8, num_workers=workers, seed=seed,
                           samples_per_epoch=8 * steps, feature_cache=cache)
    dm.attach(module.tokenizer, module.audio_token_spec)
    losses, telemetry = LossRecorder(), TelemetryCallback(log_every_n_steps=max(1, steps - 1), skip_first_steps=1)
    trainer = pl.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         callbacks=[losses, telemetry], num_sanity_val_steps=0)
    trainer.fit(module, datamodule=dm)
    return losses.losses, dict(telemetry.last_metrics)


def run(scale: Scale, workdir: Path, seed: int = 0) -> dict:
    shards = Path(workdir) / "loader_shards"
    if not (shards / "index.json").is_file():
        write_mix_shards(shards, duration_mix(scale.loader_clips, seed + 1))
    cache = Path(workdir) / "feature_cache"
    shutil.rmtree(cache, ignore_errors=True)
    cfg = tiny_config(encoder=scale.cache_encoder)
    steps = scale.train_steps + 1
    with Timer() as fill:
        ensure_feature_cache(SpeechLM.from_config(cfg), [source(shards)], cache)
    with Timer() as check:
        ensure_feature_cache(SpeechLM.from_config(cfg), [source(shards)], cache)
    online_losses, online = _fit(cfg, shards, steps, scale.workers, None, seed)
    cached_losses, cached = _fit(cfg, shards, steps, scale.workers, str(cache), seed)
    gap = max(abs(a - b) for a, b in zip(online_losses, cached_losses, strict=True))
    ratio = cached["perf/samples_per_s"] / online["perf/samples_per_s"]
    return {
        "ratio": ratio, "loss_gap": gap, "fill_s": fill.seconds, "check_s": check.seconds,
        "rows": [
            (f"online encoding ({'Whisper-tiny-shaped' if scale.cache_encoder else 'debug'} encoder, frozen), "
             "training samples/s incl. loader",
             f"{online['perf/samples_per_s']:.2f}"),
            ("cached encoder states, training samples/s incl. loader", f"{cached['perf/samples_per_s']:.2f}"),
            ("ratio cached / online", f"{ratio:.2f}x"),
            (f"one-off cache fill for {scale.loader_clips} clips, s", f"{fill.seconds:.1f}"),
            ("per-run cache check (audio + weight hashes), s", f"{check.seconds:.2f}"),
            (f"max abs loss difference over {steps} steps, cached vs online", f"{gap:.2e}"),
        ],
        "pass": ratio > 1.0 and gap <= 1e-5,
    }
