"""The sample schema and the skip counter: what is refused, what is kept, what is counted."""

from __future__ import annotations

import copy
import json

import pytest
from shardkit import encode, sample_meta, tone

from paralm.data.index import INDEX_NAME
from paralm.data.schema import SchemaError, validate_sample
from paralm.data.shards import DuplicateKeyError, write_shards
from paralm.data.skips import SKIP_REASONS, SkipCounter, SkipRateExceeded


def good_meta(i: int = 0) -> dict:
    import random

    return {**sample_meta(i, random.Random(i)), "duration": 1.0}


def test_valid_metadata_passes_and_unknown_fields_are_kept():
    meta = good_meta()
    meta["speaker"] = {"id": "spk1", "age": 31}
    meta["labels"]["gold"]["note"] = "kept"
    meta["words"] = [{"w": "the", "start": 0.0, "end": 0.2}]
    out = validate_sample(copy.deepcopy(meta))
    assert out == meta


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda m: m.pop("transcript"), "transcript"),
        (lambda m: m.update(key="has space"), "key"),
        (lambda m: m.update(key="../etc"), "key"),
        (lambda m: m.update(duration=float("nan")), "duration"),
        (lambda m: m.update(duration=True), "duration"),
        (lambda m: m.update(corpus=""), "corpus"),
        (lambda m: m.update(split="train/val"), "split"),
        (lambda m: m["labels"]["gold"].update(emotion="joy"), "labels.gold.emotion"),
        (lambda m: m["labels"]["gold"].update(arousal=1.5), "labels.gold.arousal"),
        (lambda m: m["labels"]["pred"]["ser"].update(probs={"joy": 0.5}), "labels.pred.ser.probs"),
        (lambda m: m["labels"]["pred"]["ser"].update(valence="high"), "labels.pred.ser.valence"),
        (lambda m: m["labels"].update(pred={"bad id!": {}}), "annotator"),
        (lambda m: m["qa"][0].update(type="Q"), "qa[0].type"),
        (lambda m: m["qa"][0].update(origin="crowd"), "qa[0].origin"),
        (lambda m: m["qa"][0].pop("answer"), "qa[0]"),
        (lambda m: m.update(words=[{"w": "a", "start": 0.5, "end": 0.1}]), "words[0]"),
        (lambda m: m.update(source_kind="mixed"), "source_kind"),
    ],
)
def test_bad_metadata_is_rejected_with_the_field_named(mutate, field):
    meta = good_meta()
    mutate(meta)
    with pytest.raises(SchemaError) as err:
        validate_sample(meta)
    assert field in str(err.value)


def test_invalid_choice_message_lists_valid_choices():
    meta = good_meta()
    meta["labels"]["gold"]["emotion"] = "joy"
    with pytest.raises(SchemaError, match="neutral, happy, sad, angry, fearful, surprised, disgusted"):
        validate_sample(meta)


def test_write_refuses_bad_metadata_and_leaves_no_shard_set(tmp_path):
    audio = encode(tone(0.5, 16000, 0), 16000)
    bad = good_meta(1)
    bad["qa"][0]["type"] = "nope"
    with pytest.raises(SchemaError, match="qa\\[0\\].type"):
        write_shards([(good_meta(0), audio, "flac"), (bad, audio, "flac")], tmp_path / "set")
    assert not (tmp_path / "set" / INDEX_NAME).exists()
    assert not list((tmp_path / "set").glob("*.tar"))


def test_write_refuses_duplicate_keys(tmp_path):
    audio = encode(tone(0.5, 16000, 0), 16000)
    with pytest.raises(DuplicateKeyError, match="s00000"):
        write_shards([(good_meta(0), audio, "flac"), (good_meta(0), audio, "flac")], tmp_path / "set")


def test_skip_counter_counts_merges_and_round_trips(tmp_path):
    worker_a, worker_b = SkipCounter(), SkipCounter()
    worker_a.add("bad_json", "k1", "s0.tar", "Expecting value\nline 1")
    worker_a.deliver(3)
    worker_b.add("too_long", "k2", "s1.tar")
    worker_b.add("bad_json", "k3", "s1.tar")
    worker_b.deliver()
    total = SkipCounter().merge(worker_a).merge(worker_b)
    assert total.counts["bad_json"] == 2 and total.counts["too_long"] == 1
    assert (total.total, total.delivered, total.seen) == (3, 4, 7)
    assert list(total.counts) == list(SKIP_REASONS)
    restored = SkipCounter()
    restored.load_state_dict(json.loads(json.dumps(total.state_dict())))
    assert restored.counts == total.counts and restored.seen == 7 and restored.records == total.records
    lines = [
        json.loads(x) for x in restored.write_skipped(tmp_path / "skipped.jsonl").read_text().splitlines()
    ]
    assert lines[0] == {
        "key": "k1",
        "shard": "s0.tar",
        "reason": "bad_json",
        "detail": "Expecting value line 1",
    }
    assert [x["key"] for x in lines] == ["k1", "k2", "k3"]


def test_unknown_skip_reason_is_an_error_naming_the_valid_ones():
    with pytest.raises(ValueError, match="corrupt_audio"):
        SkipCounter().add("flaky", "k", "s")


def test_skip_rate_guard_stops_with_counts_in_the_message():
    counter = SkipCounter()
    counter.deliver(8)
    counter.add("corrupt_audio", "a", "s")
    counter.add("bad_json", "b", "s")
    counter.check_rate(0.5, min_seen=5)
    with pytest.raises(SkipRateExceeded, match=r"skipped 2 of 10 .*corrupt_audio=1, bad_json=1"):
        counter.check_rate(0.1, min_seen=5)
    counter.check_rate(0.1, min_seen=11)  # too few attempts to judge yet


def test_records_beyond_the_cap_are_counted_not_kept():
    counter = SkipCounter(max_records=2)
    for i in range(5):
        counter.add("schema", f"k{i}", "s")
    assert counter.counts["schema"] == 5 and len(counter.records) == 2 and counter.records_dropped == 3
