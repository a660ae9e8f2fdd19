"""TelemetryCallback logs throughput and MFU consistent with the batches it saw and the FLOP model."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers.logger import Logger
from trainkit import tiny_datamodule, tiny_module, tiny_shards

from callbacks.telemetry import TelemetryCallback
from paralm.perf.flops import FlopModel


class MemoryLogger(Logger):
    """Keeps every logged metrics dict in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []

    @property
    def name(self) -> str:
        return "memory"

    @property
    def version(self) -> int:
        return 0

    def log_metrics(self, metrics, step=None) -> None:
        self.rows.append(dict(metrics))

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass


class BatchRecorder(pl.Callback):
    def __init__(self) -> None:
        self.batches = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches.append(batch)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("telemetry")
    torch.manual_seed(0)
    module = tiny_module()
    dm = tiny_datamodule(tiny_shards(tmp, n=24), module, batch_size=4)
    telemetry, recorder, logger = TelemetryCallback(log_every_n_steps=2, skip_first_steps=1, peak_flops=1e9), \
        BatchRecorder(), MemoryLogger()
    trainer = pl.Trainer(accelerator="cpu", max_steps=5, logger=logger, log_every_n_steps=1, limit_val_batches=0,
                         enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
                         callbacks=[telemetry, recorder], default_root_dir=tmp)
    trainer.fit(module, datamodule=dm)
    return module, telemetry, recorder.batches, logger.rows


def test_throughput_and_mfu_reach_the_logger(fitted):
    _, _, _, rows = fitted
    perf = [r for r in rows if "perf/samples_per_s" in r]
    assert len(perf) == 2  # steps 2-3 and 4-5 (step 1 skipped)
    for row in perf:
        for key in ("samples_per_s", "audio_seconds_per_s", "tokens_per_s", "tflops_per_s", "mfu", "mfu_frozen",
                    "mfu_trained", "mfu_attention", "padding_efficiency"):
            value = row[f"perf/{key}"]
            assert math.isfinite(value) and value > 0, key
        assert row["perf/mfu_frozen"] + row["perf/mfu_trained"] + row["perf/mfu_attention"] == pytest.approx(
            row["perf/mfu"])
        assert 0 < row["perf/padding_efficiency"] <= 1


def test_rates_match_the_window_batches_and_flop_model(fitted):
    module, telemetry, batches, _ = fitted
    window = batches[3:5]  # the last window: batches 4 and 5
    m = telemetry.last_metrics
    samples = sum(len(b) for b in window)
    tokens = sum(int(b.attention_mask.sum()) for b in window)
    audio = sum(float(b.audio_seconds.sum()) for b in window)
    seconds = samples / m["perf/samples_per_s"]
    assert m["perf/tokens_per_s"] * seconds == pytest.approx(tokens, rel=1e-6)
    assert m["perf/audio_seconds_per_s"] * seconds == pytest.approx(audio, rel=1e-5)
    flops = sum(FlopModel(module.net).step(b).total for b in window)
    assert m["perf/mfu"] * 1e9 * seconds == pytest.approx(flops, rel=1e-6)  # peak_flops=1e9 was configured
    assert m["perf/tflops_per_s"] * 1e12 * seconds == pytest.approx(flops, rel=1e-6)


def test_bad_settings_are_refused_with_the_field_name():
    with pytest.raises(ValueError, match="log_every_n_steps"):
        TelemetryCallback(log_every_n_steps=0)
    with pytest.raises(ValueError, match="skip_first_steps"):
        TelemetryCallback(skip_first_steps=-1)
