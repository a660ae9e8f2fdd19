"""`mode: streaming` on a train source: unindexed, published shard sets train from a config (weaker guarantees)."""

from __future__ import annotations

import json

import pytest
from foreignkit import clips, fit_overlay, paralm, schema_meta, write_wds
from trainkit import tiny_module

from paralm.data.datamodule import MixtureDataModule
from paralm.data.sources import SourceSpec


@pytest.fixture(scope="module")
def web_shards(tmp_path_factory):
    """Schema-complete samples with QA, written by webdataset.ShardWriter (no index), plus one corrupt clip."""
    tmp = tmp_path_factory.mktemp("stream")
    samples = []
    for c in clips(10, seed=20):
        meta = schema_meta(c, qa=True, duration=0.4 + 0.1 * (int(c.key[-3:]) % 4))
        samples.append({"__key__": c.key, "wav": c.wav, "json": json.dumps(meta).encode()})
    broken = schema_meta(clips(1, seed=99)[0], qa=True, duration=1.0)
    samples.insert(3, {"__key__": broken["key"], "wav": b"RIFF" + b"\x02" * 80, "json": json.dumps(broken).encode()})
    write_wds(tmp / "web", samples, maxcount=4)
    return tmp / "web"


def _spec(path, mode="streaming", name="web"):
    return SourceSpec(name=name, path=str(path), kind="general", mode=mode)


def test_streaming_source_from_a_config_trains_two_steps_without_an_index(web_shards, tmp_path):
    assert not (web_shards / "index.json").exists()
    overlay = fit_overlay(tmp_path, f"{{name: web, path: {web_shards}, kind: general, mode: streaming}}")
    fit = paralm("fit", "--config", "experiments/debug_cpu.yaml", "--config", str(overlay))
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "`max_steps=2` reached" in fit.stderr + fit.stdout


def test_stream_loader_runs_the_declared_batches_and_counts_the_corrupt_clip(web_shards):
    module = tiny_module()
    dm = MixtureDataModule(train_sources=[_spec(web_shards)], batch_size=4, num_workers=0,
                           samples_per_epoch=24, seed=3)
    dm.attach(module.tokenizer, module.audio_token_spec)
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(loader) == 6 and len(batches) == 6 and all(len(b) == 4 for b in batches)
    assert {s for b in batches for s in b.sources} == {"web"}
    stats = dm.data_stats("train")
    assert stats["delivered"] == 24  # every delivered clip has a QA pair, so 24 clips fill the 6 batches
    assert stats["skip_corrupt_audio"] >= 1  # shards are drawn with replacement; seed 3 draws the broken one


@pytest.mark.parametrize("kwargs, message", [
    (dict(train_sources=[_spec("a"), _spec("b", mode="indexed", name="idx")]), "mixes streaming"),
    (dict(train_sources=[_spec("a"), _spec("b", name="web2")]), "one source per run"),
    (dict(train_sources=[_spec("a")], implicit_ratio=0.5), "implicit_ratio"),
    (dict(train_sources=[_spec("a")], samples_per_epoch=None), "samples_per_epoch"),
    (dict(train_sources=[_spec("a")], val_sources=[_spec("a")]), "needs the index"),
])
def test_configurations_streaming_cannot_honour_are_refused(kwargs, message):
    kwargs.setdefault("samples_per_epoch", 8)
    with pytest.raises(ValueError, match=message):
        MixtureDataModule(**kwargs)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown mode 'stream'"):
        SourceSpec(name="x", path="p", mode="stream")


def test_a_folder_being_written_is_never_streamed(tmp_path):
    c = clips(1, seed=30)[0]
    write_wds(tmp_path / "busy", [{"__key__": c.key, "wav": c.wav, "json": json.dumps(
        schema_meta(c, qa=True, duration=0.4)).encode()}])
    (tmp_path / "busy" / ".train-000001.tar.partial-77").write_bytes(b"")
    module = tiny_module()
    dm = MixtureDataModule(train_sources=[_spec(tmp_path / "busy")], batch_size=2, num_workers=0, samples_per_epoch=4)
    dm.attach(module.tokenizer, module.audio_token_spec)
    with pytest.raises(ValueError, match="being written"):
        dm.train_dataloader()
