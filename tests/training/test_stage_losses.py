"""Per-source losses are kept per stage: validation figures never include training batches."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from trainkit import tiny_module, tiny_shards

from paralm.data.datamodule import MixtureDataModule
from paralm.data.source_metrics import SourceLossAggregator, StageSourceLosses
from paralm.data.sources import SourceSpec


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """2 training steps on general + implicit sources, then one validation run on general only."""
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("stage_losses")
    general, implicit = tiny_shards(tmp / "g"), tiny_shards(tmp / "i", seed=1, durations=(0.4, 0.9))
    module = tiny_module()
    dm = MixtureDataModule(
        train_sources=[SourceSpec(name="general", path=str(general), split="train"),
                       SourceSpec(name="implicit", path=str(implicit), kind="implicit", split="train")],
        val_sources=[SourceSpec(name="general", path=str(general), split="val")],
        batch_size=4, num_workers=0, samples_per_epoch=8)
    dm.attach(module.tokenizer, module.audio_token_spec)
    trainer = pl.Trainer(accelerator="cpu", max_steps=2, val_check_interval=2, num_sanity_val_steps=0,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp)
    trainer.fit(module, datamodule=dm)
    return {name: float(v) for name, v in trainer.callback_metrics.items()}, dm


def test_validation_source_losses_count_only_validation_batches(fitted):
    metrics, dm = fitted
    assert dm.last_plan_counts.get("implicit", 0) > 0  # training did draw implicit items
    assert "train/loss_implicit" in metrics
    assert "val/loss_implicit" not in metrics  # the validation set holds no implicit item


def test_validation_loss_of_the_only_source_equals_validation_loss(fitted):
    metrics, _ = fitted
    assert metrics["val/loss_general"] == pytest.approx(metrics["val/loss"], rel=1e-6)


def test_aggregator_sums_by_source_and_resets_to_its_grown_shape():
    agg = SourceLossAggregator([], grow=True)
    agg.update(["x", "y", "x"], torch.tensor([3.0, 5.0, 1.0]), weights=torch.tensor([3.0, 1.0, 1.0]))
    assert agg.compute() == {"x": 1.0, "y": 5.0}
    agg.reset()
    assert agg.sources == ["x", "y"] and agg.sums.tolist() == [0.0, 0.0] and agg.compute() == {}


def test_stage_losses_keep_stages_apart_name_the_logged_keys_and_start_over_after_each_epoch():
    losses = StageSourceLosses(["a", "b"])
    losses.update("train", ["a", "b"], torch.tensor([6.0, 1.0]), torch.tensor([3, 1]))
    losses.update("val", ["b"], torch.tensor([8.0]), torch.tensor([2]))
    losses.update("train", ["a"], torch.tensor([2.0]), torch.tensor([1]))
    assert losses.epoch_end("train") == {"train/loss_a": 2.0, "train/loss_b": 1.0}
    assert losses.epoch_end("val") == {"val/loss_b": 4.0}  # a source nobody saw is left out, not NaN
    assert losses.epoch_end("train") == {} and losses.epoch_end("test") == {}


def test_stage_losses_of_a_trainer_take_its_datamodule_names_ranks_and_device():
    from types import SimpleNamespace

    trainer = SimpleNamespace(datamodule=SimpleNamespace(source_names=["x", "y"]), world_size=2,
                              strategy=SimpleNamespace(root_device=torch.device("cpu")))
    losses = StageSourceLosses.for_trainer(trainer)
    assert losses.aggregator("val").sources == ["x", "y"] and not losses.aggregator("val").grow
    with pytest.raises(ValueError, match="unknown source"):  # several ranks: no name may appear late
        losses.update("val", ["z"], torch.tensor([1.0]), torch.tensor([1]))
    no_names = StageSourceLosses.for_trainer(SimpleNamespace(datamodule=None, world_size=2, strategy=trainer.strategy))
    assert no_names.aggregator("val") is None and no_names.epoch_end("val") == {}
