"""Fill a frozen encoder's state cache before any loader exists, and hand the store to the datamodule.

Why a callback: filling needs both the model (its encoder, device and precision) and the datamodule (its
sources and `feature_cache` folder). Lightning's `setup` hook of a callback sees both, so neither the
LightningModule nor the datamodule has to know the other. `SpeechLMModule.configure_callbacks` returns it,
so every Trainer that runs the module (the CLI's fit / validate / test / predict, ablation rows, sweep
trials, a Trainer built in Python) fills at setup, as before; a datamodule without `feature_cache` is
left alone. What filling does (fingerprints, each rank its share) is in paralm/feature_store_fill.py.
"""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


class EncoderCacheFill(Callback):
    """At setup: encode what the datamodule's `feature_cache` lacks and attach the store (no-op without one)."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        if getattr(datamodule, "feature_cache", None):
            # imported here: the store reads audio (soundfile), which a Trainer fed ready-made batches, such
            # as the GPU benchmark's, need not have installed
            from paralm.feature_store_fill import fill_for_module

            fill_for_module(pl_module, datamodule)
