"""The committed demo corpus (data/demo/shards/general) meets its constraints, read through the project's reader.

Metadata of every sample is read and schema-validated through `iter_samples`; a seeded subset of the
audio is decoded through `SampleReader` (decoding all of it would take most of the time budget).
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict

import numpy as np
import pytest
from demokit import DEMO, demo_module

from paralm.data.index import ShardIndex
from paralm.data.reader import SampleReader, iter_samples
from paralm.data.schema import validate_sample

SHARDS = DEMO / "shards" / "general"
MAX_BYTES = 40_000_000


@pytest.fixture(scope="module")
def corpus() -> tuple[ShardIndex, list[dict]]:
    index = ShardIndex.load(SHARDS)
    return index, [meta for _, meta, _ in iter_samples(index)]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def test_committed_corpus_is_within_the_size_budget():
    files = [p for p in SHARDS.rglob("*") if p.is_file()]
    assert any(p.suffix == ".tar" for p in files) and (SHARDS / "index.json").is_file()
    assert sum(p.stat().st_size for p in files) <= MAX_BYTES


def test_every_shard_matches_its_recorded_checksum(corpus):
    index, _ = corpus
    assert index.verify_shards() == []


def test_every_sample_passes_the_schema_and_carries_the_demo_fields(corpus):
    index, metas = corpus
    assert len(metas) == len(index.samples) >= 1200
    for meta in metas:
        validate_sample(meta)
        gold = meta["labels"]["gold"]
        assert {"emotion", "arousal", "valence", "dominance", "gender"} <= set(gold)
        assert isinstance(meta["neutral_text"], bool)
        assert meta["text_sentiment"] in ("neutral", "positive", "negative")
        assert meta["neutral_text"] == (meta["text_sentiment"] == "neutral")
        assert meta["source_kind"] == "general"


def test_corpus_has_enough_voices_emotions_and_both_genders(corpus):
    _, metas = corpus
    assert len({m["speaker"] for m in metas}) >= 8
    assert len(Counter(m["labels"]["gold"]["emotion"] for m in metas)) >= 5
    for split in ("train", "test"):
        genders = {m["labels"]["gold"]["gender"] for m in metas if m["split"] == split}
        assert genders == {"male", "female"}


def test_splits_share_neither_voices_nor_sentences(corpus):
    _, metas = corpus
    voices, sentences = defaultdict(set), defaultdict(set)
    for m in metas:
        voices[m["split"]].add(m["speaker"])
        sentences[m["split"]].add(m["transcript"])
    assert set(voices) == {"train", "val", "test"}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not voices[a] & voices[b], (a, b)
        assert not sentences[a] & sentences[b], (a, b)


def test_test_split_has_label_questions_and_held_out_content_and_cp_questions(corpus):
    _, metas = corpus
    test = [m for m in metas if m["split"] == "test"]
    types = Counter(q["type"] for m in test for q in m["qa"])
    assert types["DP"] >= 300 and types["C"] > 0 and types["CP"] > 0
    train_questions = {q["question"] for m in metas if m["split"] == "train" for q in m["qa"]}
    held_out = [q for m in test for q in m["qa"] if q["type"] in ("C", "CP")]
    assert not {q["question"] for q in held_out} & train_questions
    neutral_dp = sum(q["type"] == "DP" for m in test if m["neutral_text"] for q in m["qa"])
    assert neutral_dp >= 200  # the headline compares systems on neutral sentences


def test_held_out_questions_use_only_words_seen_in_training_or_in_the_clip(corpus):
    _, metas = corpus
    vocab: set[str] = set()
    for m in metas:
        if m["split"] == "train":
            vocab |= _words(m["transcript"])
            for q in m["qa"]:
                vocab |= _words(q["question"]) | _words(q["answer"])
    unseen = {w for m in metas if m["split"] != "train" for q in m["qa"]
              for w in _words(q["question"]) - vocab - _words(m["transcript"])}
    assert not unseen


def test_emotions_are_balanced_within_each_voice_and_sentence(corpus):
    _, metas = corpus
    per_clip = Counter((m["speaker"], m["transcript"]) for m in metas)
    assert set(per_clip.values()) == {6}


def test_decoded_audio_matches_index_and_is_clean(corpus):
    index, _ = corpus
    reader = SampleReader(SHARDS)
    for row in random.Random(0).sample(index.samples, 300):
        sample = reader.read(row)
        assert sample.sample_rate == 16000 and sample.audio.dtype == np.float32
        assert abs(sample.duration - row.duration) < 1e-3
        assert np.isfinite(sample.audio).all() and 0.005 < np.abs(sample.audio).max() <= 1.0
        assert sample.meta["labels"]["gold"]["emotion"] == row.emotion


def test_committed_metadata_is_what_build_script_produces(corpus):
    """Labels, QA and rendering parameters are a pure function of the seed (no espeak-ng needed)."""
    _, metas = corpus
    build = demo_module("build")
    plan = build.clip_plan()
    assert len(plan) == len(metas)
    by_key = {m["key"]: m for m in metas}
    for vi, si, ei in random.Random(1).sample(plan, 200):
        expected, _ = build.clip_meta(vi, si, ei)
        got = {k: v for k, v in by_key[expected["key"]].items() if k != "duration"}
        assert got == expected
