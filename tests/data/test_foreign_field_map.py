"""Field maps: foreign member names, columns and cut fields -> schema fields, and the errors a bad map gives."""

from __future__ import annotations

import json

import pytest
from foreignkit import clips, paralm, write_wds

from paralm.data.foreign.field_map import MapError, parse_map
from paralm.data.index import ShardIndex


def test_values_rename_by_position_or_name_and_numbers_are_converted():
    fmap = parse_map({
        "fields": {"labels.gold.emotion": "cls", "labels.gold.arousal": "json.aro", "transcript": "txt"},
        "values": {"labels.gold.emotion": ["neutral", "happy"]},
    })
    meta = fmap.apply({"cls": "1", "txt": " hi ", "json": {"aro": "0.25"}})
    assert meta == {"labels": {"gold": {"emotion": "happy", "arousal": 0.25}}, "transcript": "hi"}
    named = parse_map({"fields": {"labels.gold.emotion": "emo"}, "values": {"labels.gold.emotion": {"ang": "angry"}}})
    assert named.apply({"emo": "ang"})["labels"]["gold"]["emotion"] == "angry"
    assert named.apply({"emo": "Sad"})["labels"]["gold"]["emotion"] == "sad"  # schema names, any case


def test_mapping_over_a_json_member_leaves_the_member_unchanged():
    base = {"key": "k", "labels": {"gold": {"emotion": "sad"}}}
    meta = parse_map({"fields": {"labels.gold.emotion": "cls"}}).apply({"cls": "angry", "json": base}, base)
    assert meta["labels"]["gold"]["emotion"] == "angry" and base["labels"]["gold"]["emotion"] == "sad"


@pytest.mark.parametrize("rule, record, name, split", [
    ("train", {}, "x.tar", "train"),
    ({"field": "json.part"}, {"json": {"part": "val"}}, "x.tar", "val"),
    ({"pattern": "^(train|dev)-"}, {}, "dev-000003.tar", "dev"),
    ({"pattern": "(?P<split>test)"}, {}, "a-test-1.tar", "test"),
])
def test_split_comes_from_a_value_a_field_or_the_input_name(rule, record, name, split):
    assert parse_map({"split": rule}).apply(record, name=name)["split"] == split


def test_qa_rules_make_pairs_only_where_question_and_answer_exist():
    fmap = parse_map({"qa": [{"question": "json.q", "answer": "json.a", "type": "DP", "asks": "emotion"}]})
    assert fmap.apply({"json": {"q": "How?", "a": "calm"}})["qa"] == [
        {"question": "How?", "answer": "calm", "type": "DP", "origin": "human", "asks": "emotion"}]
    assert "qa" not in fmap.apply({"json": {"q": "How?", "a": " "}})


@pytest.mark.parametrize("doc, message", [
    ({"feilds": {}}, "unknown field-map entries"),
    ({"split": {"regex": "x"}}, "split"),
    ({"split": {"pattern": "("}}, "split.pattern"),
    ({"qa": [{"question": "q"}]}, "qa\\[0\\]"),
    ({"qa": [{"question": "q", "answer": "a", "type": "X"}]}, "qa\\[0\\].type"),
    ({"values": {"labels.gold.emotion": "angry"}}, "values.labels.gold.emotion"),
    ({"audio": []}, "audio"),
])
def test_a_bad_map_names_the_entry(doc, message):
    with pytest.raises(MapError, match=message):
        parse_map(doc)


def test_mapped_qa_makes_indexed_foreign_shards_trainable_without_generation(tmp_path):
    items = clips(3, seed=50)
    write_wds(tmp_path / "qa", [{"__key__": c.key, "wav": c.wav, "json": json.dumps(
        {"text": c.transcript, "q": "What is the mood?", "a": c.emotion}).encode()} for c in items])
    fmap = tmp_path / "map.yaml"
    fmap.write_text("fields: {transcript: json.text}\nsplit: train\n"
                    "qa: [{question: json.q, answer: json.a, type: DP, asks: emotion}]\n")
    proc = paralm("data", "index", str(tmp_path / "qa"), "--out", str(tmp_path / "qa"), "--map", str(fmap))
    assert proc.returncode == 0, proc.stderr
    rows = ShardIndex.load(tmp_path / "qa").samples
    assert [(r.n_qa, r.qa_types, r.corpus) for r in rows] == [(1, ["DP"], "qa")] * 3


def test_a_bad_map_file_is_one_line_exit_2(tmp_path):
    items = clips(1, seed=51)
    write_wds(tmp_path / "s", [{"__key__": c.key, "wav": c.wav} for c in items])
    fmap = tmp_path / "map.yaml"
    fmap.write_text("split: {regex: x}\n")
    proc = paralm("data", "index", str(tmp_path / "s"), "--out", str(tmp_path / "s"), "--map", str(fmap))
    assert proc.returncode == 2 and "map.yaml" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
