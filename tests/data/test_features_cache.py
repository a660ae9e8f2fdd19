"""Cached encoder states: same training loss as online encoding, computed once, never stale, same skips."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from shardkit import corrupt_shards
from trainkit import tiny_datamodule, tiny_module, tiny_shards

from paralm.data.feature_store import CachedSampleReader, FeatureStore, StaleFeatureCache
from paralm.data.index import ShardIndex
from paralm.data.reader import SampleReader, SkipSample
from paralm.data.sources import SourceSpec
from paralm.feature_store_fill import encoder_fingerprint, ensure_feature_cache
from paralm.model.builders import tiny_speech_lm_config, tiny_whisper_config
from paralm.model.speech_lm import SpeechLM


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return tiny_shards(tmp_path_factory.mktemp("cache"), n=24)


def _sources(shards) -> list[SourceSpec]:
    return [SourceSpec("general", str(shards), split=split) for split in ("train", "val")]


class Recorder(pl.Callback):
    def __init__(self) -> None:
        self.losses, self.batches = [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))
        self.batches.append(batch)


def _fit(shards, tmp, cache: str | None, steps: int = 3) -> Recorder:
    torch.manual_seed(0)
    module = tiny_module()
    dm = tiny_datamodule(shards, module, feature_cache=cache)
    recorder = Recorder()
    trainer = pl.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_progress_bar=False,
                         limit_val_batches=0, enable_checkpointing=False, enable_model_summary=False,
                         callbacks=[recorder], default_root_dir=tmp)
    trainer.fit(module, datamodule=dm)
    return recorder


def test_training_with_cached_states_gives_the_online_loss(shards, tmp_path):
    online = _fit(shards, tmp_path, None)
    cached = _fit(shards, tmp_path, str(tmp_path / "features"))
    assert all(b.encoder_states is None for b in online.batches)
    for batch in cached.batches:
        assert batch.encoder_states is not None and batch.features.shape[-1] == 0
        assert batch.encoder_states.shape[:2] == (len(batch), int(batch.encoder_lengths.max()))
    assert [b.keys for b in cached.batches] == [b.keys for b in online.batches]
    torch.testing.assert_close(torch.tensor(cached.losses), torch.tensor(online.losses), atol=1e-6, rtol=0)


def test_second_fill_encodes_nothing_and_returns_the_same_store(shards, tmp_path):
    net = SpeechLM.from_config(tiny_speech_lm_config())
    calls = []
    net.encoder.register_forward_hook(lambda *args: calls.append(1))
    first = ensure_feature_cache(net, _sources(shards), tmp_path)
    n_calls, parts = len(calls), sorted((first / "parts").iterdir())
    assert n_calls > 0 and parts
    again = ensure_feature_cache(SpeechLM.from_config(tiny_speech_lm_config()), _sources(shards), tmp_path)
    assert again == first and sorted((first / "parts").iterdir()) == parts
    index = ShardIndex.load(shards)
    assert len(FeatureStore(first).known()) == len({r.key for r in index.samples})


def test_changed_weights_or_feature_settings_are_a_miss(shards, tmp_path):
    base = SpeechLM.from_config(tiny_speech_lm_config())
    fp = encoder_fingerprint(base.encoder)[0]
    assert encoder_fingerprint(SpeechLM.from_config(tiny_speech_lm_config()).encoder)[0] == fp
    nudged = SpeechLM.from_config(tiny_speech_lm_config())
    with torch.no_grad():
        nudged.encoder.model.layers[0].fc1.weight[0, 0] += 1e-3
    assert encoder_fingerprint(nudged.encoder)[0] != fp
    assert encoder_fingerprint(base.encoder, torch.bfloat16)[0] != fp
    chunked = SpeechLM.from_config(tiny_speech_lm_config(chunk_seconds=10.0))
    assert encoder_fingerprint(chunked.encoder)[0] != fp
    cfg = tiny_speech_lm_config()
    cfg.encoder.config = tiny_whisper_config(num_mel_bins=64)
    assert encoder_fingerprint(SpeechLM.from_config(cfg).encoder)[0] != fp
    a = ensure_feature_cache(base, _sources(shards)[:1], tmp_path)
    b = ensure_feature_cache(nudged, _sources(shards)[:1], tmp_path)
    assert a != b and a.parent == b.parent == tmp_path


def test_changed_audio_is_refused_instead_of_served_stale(shards, tmp_path):
    store = ensure_feature_cache(SpeechLM.from_config(tiny_speech_lm_config()), _sources(shards)[:1], tmp_path)
    other = tiny_shards(tmp_path / "other", n=24, seed=7)  # same keys, different audio
    row = ShardIndex.load(other).filter(split="train")[0]
    reader = CachedSampleReader(SampleReader(other), FeatureStore(store))
    with pytest.raises(StaleFeatureCache, match=row.key):
        reader.read(row)


def _outcome(reader, row):
    try:
        sample = reader.read(row)
    except SkipSample as err:
        return err.reason
    return ("ok", round(sample.duration, 4))


def test_cached_reader_skips_exactly_what_decoding_skips(shards, tmp_path):
    injected = corrupt_shards(shards, tmp_path / "bad", seed=3)
    specs = [SourceSpec("bad", str(injected.out_dir), split=split) for split in ("train", "val")]
    store = ensure_feature_cache(SpeechLM.from_config(tiny_speech_lm_config()), specs, tmp_path / "features")
    plain = SampleReader(injected.out_dir, min_duration=0.25, max_duration=3.0)
    cached = CachedSampleReader(plain, FeatureStore(store))
    found = {row.key: (_outcome(plain, row), _outcome(cached, row)) for row in ShardIndex.load(injected.out_dir).samples}
    assert {k: v for k, v in found.items() if v[0] != v[1]} == {}
    reasons = {a for a, _ in found.values() if isinstance(a, str)}
    assert reasons >= {"corrupt_audio", "non_finite_audio", "bad_json", "too_long", "too_short", "truncated_shard"}
    assert sum(a[0] == "ok" for a, _ in found.values() if isinstance(a, tuple)) > 0


def test_trainable_encoder_is_refused(shards, tmp_path):
    net = SpeechLM.from_config(tiny_speech_lm_config(encoder_trainable="lora"))
    with pytest.raises(ValueError, match="frozen encoder"):
        ensure_feature_cache(net, _sources(shards), tmp_path)


def test_validate_alone_fills_the_cache_through_the_module_s_callback(shards, tmp_path):
    torch.manual_seed(0)
    module = tiny_module()
    dm = tiny_datamodule(shards, module, feature_cache=str(tmp_path / "features"))
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path)
    logged = trainer.validate(module, datamodule=dm, verbose=False)[0]
    assert [type(cb).__name__ for cb in trainer.callbacks].count("EncoderCacheFill") == 1
    (store,) = (tmp_path / "features").iterdir()
    index = ShardIndex.load(shards)
    assert len(FeatureStore(store).known()) == len({r.key for r in index.samples if r.split in ("train", "val")})
    assert logged["val/loss"] > 0 and logged["val/loss_general"] == pytest.approx(logged["val/loss"], rel=1e-6)
