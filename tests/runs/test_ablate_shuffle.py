"""Shuffled-audio evaluation: every clip keeps its key and questions but hears another clip's audio."""

import numpy as np
from ablatekit import make_kit_shards
from trainkit import tiny_module

from paralm.data.datamodule import MixtureDataModule
from paralm.data.sources import SourceSpec


def _test_datamodule(tmp_path) -> MixtureDataModule:
    """48 kit clips' test split, attached to the tiny model's tokenizer."""
    shards = make_kit_shards(tmp_path, n=48)
    module = tiny_module()
    dm = MixtureDataModule(test_sources=[SourceSpec("general", str(shards), split="test")], batch_size=4,
                           num_workers=0)
    dm.attach(module.tokenizer, module.audio_token_spec)
    return dm


def _items(dm, seed):
    out = {}
    for batch in dm.generation_dataloader("test", shuffle_audio_seed=seed):
        for i, key in enumerate(batch.keys):
            n = int(batch.feature_lengths[i])
            out[(key, batch.questions[i])] = batch.features[i, :, :n].clone()
    return out


def test_shuffled_audio_keeps_questions_and_changes_every_clips_audio(tmp_path):
    dm = _test_datamodule(tmp_path)
    normal, shuffled, again = _items(dm, None), _items(dm, 7), _items(dm, 7)
    assert normal.keys() == shuffled.keys()  # same keys and questions, nothing dropped or added
    by_key = {}
    for (key, _), feats in normal.items():
        by_key[key] = feats
    for (key, _), feats in shuffled.items():
        assert not (feats.shape == by_key[key].shape and np.allclose(feats, by_key[key])), key
        assert any(f.shape == feats.shape and np.allclose(f, feats) for f in by_key.values())  # another clip's
    assert all(np.allclose(shuffled[k], again[k]) for k in shuffled)  # seeded


def test_one_clip_questions_all_hear_the_same_donor(tmp_path):
    dm = _test_datamodule(tmp_path)
    shuffled = _items(dm, 3)
    keys = {k for k, _ in shuffled}
    for key in keys:
        feats = [f for (k, _), f in shuffled.items() if k == key]
        assert all(np.allclose(feats[0], f) for f in feats[1:])


def test_shuffled_audio_swaps_cached_encoder_states_too(tmp_path):
    from paralm.feature_store_fill import ensure_feature_cache

    shards = make_kit_shards(tmp_path, n=48)
    module = tiny_module()
    module.configure_model()
    spec = SourceSpec("general", str(shards), split="test")
    dm = MixtureDataModule(test_sources=[spec], batch_size=4, num_workers=0, feature_cache=str(tmp_path / "fc"))
    dm.attach(module.tokenizer, module.audio_token_spec)
    dm.attach_feature_store(ensure_feature_cache(module.net.encoder, [spec], str(tmp_path / "fc")))

    def states(seed):
        out = {}
        for batch in dm.generation_dataloader("test", shuffle_audio_seed=seed):
            for i, key in enumerate(batch.keys):
                out[key] = batch.encoder_states[i, : int(batch.encoder_lengths[i])].clone()
        return out

    normal, shuffled = states(None), states(5)
    assert normal.keys() == shuffled.keys()
    for key, s in shuffled.items():
        assert not (s.shape == normal[key].shape and np.allclose(s, normal[key])), key
