"""A real 2-process CPU DDP fit (gloo, 60-s collective timeout) over the mixture DataModule.

The test runs this file as a script (`python test_ddp_data.py DATA OUT`); Lightning's DDP launcher
starts the second rank by running the same command again. Each rank writes what it trained and
validated on, and the test checks: world size 2, disjoint training items, equal step counts (with
fewer shards than ranks x workers), every validation item exactly once across ranks (11 items: not
divisible by world size x batch size), and per-source validation losses aggregated across ranks
although one source only appears on one rank. A checkpoint written mid-epoch holds both ranks' skip
counters and the position in the plan.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
BATCH_SIZE = 4


def run_rank(data: Path, out: Path) -> None:
    """Body of each DDP rank."""
    import torch
    from feedkit import make_audio_spec, make_tokenizer
    from lightning.pytorch import LightningModule, Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.strategies import DDPStrategy

    from paralm.data.datamodule import MixtureDataModule
    from paralm.data.source_metrics import SourceLossAggregator
    from paralm.data.sources import SourceSpec

    torch.set_num_threads(1)

    class Recorder(LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(16, 1)
            self.train_items: list = []
            self.val_items: list = []
            self.val_losses = SourceLossAggregator(["val_a", "val_b"])
            self.aggregated: dict = {}

        def item_losses(self, batch):
            pooled = batch.features.sum(-1) / batch.feature_lengths.clamp(min=1).unsqueeze(
                -1
            )  # (B, C, T) -> (B, C)
            return self.lin(pooled).squeeze(-1).pow(2)  # (B,)

        def training_step(self, batch, batch_idx):
            self.train_items += [
                [k, m["qa_index"], s] for k, m, s in zip(batch.keys, batch.meta, batch.sources, strict=True)
            ]
            return self.item_losses(batch).mean()

        def validation_step(self, batch, batch_idx):
            losses = self.item_losses(batch)
            keep = [i for i, m in enumerate(batch.meta) if not m["is_pad"]]
            self.val_losses.update([batch.sources[i] for i in keep], losses[keep])
            self.val_items += [
                [batch.keys[i], batch.meta[i]["qa_index"], batch.sources[i], float(losses[i])] for i in keep
            ]

        def on_validation_epoch_end(self):
            self.aggregated = self.val_losses.compute()
            self.val_losses.reset()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)  # weights stay put: losses are comparable

    tok = make_tokenizer()
    dm = MixtureDataModule(
        train_sources=[
            SourceSpec("gen", str(data / "gen"), weight=12.0),
            SourceSpec("imp", str(data / "imp"), kind="implicit", weight=8.0),
        ],
        val_sources=[
            SourceSpec("val_a", str(data / "val_a"), split="val"),
            SourceSpec("val_b", str(data / "val_b"), split="val"),
        ],
        batch_size=BATCH_SIZE,
        samples_per_epoch=18,
        num_workers=2,
        seed=5,
    )
    dm.attach(tok, make_audio_spec(tok))
    model = Recorder()
    trainer = Trainer(
        accelerator="cpu",
        devices=2,
        strategy=DDPStrategy(timeout=timedelta(seconds=60)),
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[ModelCheckpoint(dirpath=out / "ckpt", every_n_train_steps=1, save_top_k=-1)],
    )
    trainer.fit(model, datamodule=dm)
    record = {
        "rank": trainer.global_rank,
        "world_size": trainer.world_size,
        "steps": trainer.global_step,
        "train": model.train_items,
        "val": model.val_items,
        "aggregated": model.aggregated,
    }
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def test_two_process_ddp_fit_splits_data_and_aggregates_sources(tmp_path):
    import torch
    from feedkit import durations, write_source

    data, out = tmp_path / "data", tmp_path / "out"
    out.mkdir()
    write_source(data / "gen", "g", durations(12, seed=1))  # one shard each: 2 shards < 2 ranks x 2 workers
    write_source(data / "imp", "i", durations(8, seed=2), kind="implicit")
    write_source(data / "val_a", "va", durations(10, seed=3), split="val")
    write_source(data / "val_b", "vb", [0.6], split="val")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent), str(HERE.parents[1])]))
    proc = subprocess.run(
        [sys.executable, __file__, str(data), str(out)], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]

    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["steps"] == ranks[1]["steps"] == 18 // BATCH_SIZE // 2
    train = [[tuple(x[:2]) for x in r["train"]] for r in ranks]
    assert train[0] and train[1] and not set(train[0]) & set(train[1])
    assert all(len(t) == len(set(t)) for t in train)

    val = [tuple(x[:2]) for r in ranks for x in r["val"]]
    expected = [(f"va{i:04d}", 0) for i in range(10)] + [("vb0000", 0)]
    assert sorted(val) == sorted(expected) and len(val) == 11

    on_rank = [{x[2] for x in r["val"]} for r in ranks]
    assert sum("val_b" in s for s in on_rank) == 1  # one rank never saw val_b
    for source in ("val_a", "val_b"):
        losses = [x[3] for r in ranks for x in r["val"] if x[2] == source]
        mean = sum(losses) / len(losses)
        assert abs(ranks[0]["aggregated"][source] - mean) < 1e-5
        assert ranks[1]["aggregated"][source] == ranks[0]["aggregated"][source]

    state = torch.load(out / "ckpt" / "epoch=0-step=1.ckpt", weights_only=True)["MixtureDataModule"]
    assert (state["epoch"], state["batches_consumed"], state["world_size"]) == (0, 1, 2)
    assert [s["skips"]["delivered"] for s in state["skips"]] == [
        BATCH_SIZE,
        BATCH_SIZE,
    ]  # both ranks' counters


if __name__ == "__main__":
    run_rank(Path(sys.argv[1]), Path(sys.argv[2]))
