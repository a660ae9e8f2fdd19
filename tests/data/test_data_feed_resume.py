"""Killed and resumed mid-epoch through a real Trainer: the resumed run trains on exactly the remaining items."""

import pytest
import torch
from feedkit import durations, make_audio_spec, make_tokenizer, write_source
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from paralm.data.datamodule import MixtureDataModule
from paralm.data.sources import SourceSpec

BATCHES_PER_EPOCH = 5


class KeyRecorder(LightningModule):
    """A linear layer on mean features; remembers what it trained on, in order, with epoch and batch index."""

    def __init__(self, n_mels: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(n_mels, 1)
        self.seen: list[tuple[int, int, list]] = []

    def training_step(self, batch, batch_idx):
        items = [(k, m["qa_index"]) for k, m in zip(batch.keys, batch.meta, strict=True)]
        self.seen.append((self.current_epoch, batch_idx, items))
        pooled = batch.features.sum(-1) / batch.feature_lengths.clamp(min=1).unsqueeze(
            -1
        )  # (B, C, T) -> (B, C)
        return self.lin(pooled).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    write_source(root / "gen", "g", durations(14, seed=4), n_qa=2)
    write_source(root / "imp", "i", durations(9, seed=5), kind="implicit")
    return root, make_tokenizer()


def datamodule(root, tok, workers):
    dm = MixtureDataModule(
        train_sources=[
            SourceSpec("gen", str(root / "gen")),
            SourceSpec("imp", str(root / "imp"), kind="implicit"),
        ],
        implicit_ratio=0.4,
        batch_size=4,
        samples_per_epoch=4 * BATCHES_PER_EPOCH,
        num_workers=workers,
        seed=11,
    )
    dm.attach(tok, make_audio_spec(tok))
    return dm


def trainer(**kw):
    return Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        **kw,
    )


@pytest.mark.parametrize("workers,stop_after", [(0, 3), (2, 7)])
def test_resumed_run_consumes_exactly_the_remaining_items_in_order(setup, tmp_path, workers, stop_after):
    root, tok = setup
    full = KeyRecorder(16)
    trainer(enable_checkpointing=False).fit(full, datamodule=datamodule(root, tok, workers))
    assert len(full.seen) == 2 * BATCHES_PER_EPOCH

    killed = KeyRecorder(16)
    saver = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=stop_after, save_top_k=-1)
    trainer(max_steps=stop_after, callbacks=[saver]).fit(killed, datamodule=datamodule(root, tok, workers))
    (ckpt,) = tmp_path.glob(f"*step={stop_after}.ckpt")
    state = torch.load(ckpt, weights_only=True)["MixtureDataModule"]
    epoch, position = divmod(stop_after, BATCHES_PER_EPOCH)
    assert (state["epoch"], state["batches_consumed"]) == (epoch, position)

    resumed = KeyRecorder(16)
    trainer(enable_checkpointing=False).fit(
        resumed, datamodule=datamodule(root, tok, workers), ckpt_path=str(ckpt)
    )
    assert killed.seen + resumed.seen == full.seen  # same items, same order, same epoch and batch index
    assert resumed.seen[0][:2] == (epoch, position)
