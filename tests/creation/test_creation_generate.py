"""`paralm data generate`: parsing, filters, leakage, template backend, label permutation, output shards.

The clips and the scripted generator reply come from tests/genkit.py.
"""

from __future__ import annotations

import json

import pytest
from genkit import clip_metas, write_clips

from paralm.creation.generate import GenerateConfig, generate
from paralm.creation.generate.filters import FilterConfig, filter_pairs
from paralm.creation.generate.inputs import GenInput, input_from_meta, permute_labels
from paralm.creation.generate.leakage import EvalSets
from paralm.creation.generate.parse import InvalidGeneration, parse_pairs
from paralm.creation.generate.template import template_pairs
from paralm.data.index import ShardIndex
from paralm.data.reader import iter_samples
from paralm.data.schema import EMOTIONS, validate_sample


# --- parsing ---------------------------------------------------------------------------------
def test_parser_finds_json_in_fences_and_prose_and_names_what_is_wrong():
    pair = {"type": "dp", "question": " How  do they sound? ", "answer": "Sad."}
    assert parse_pairs("Here you go:\n```json\n" + json.dumps({"pairs": [pair]}) + "\n```", 1, 3).pairs == [
        {"type": "DP", "question": "How do they sound?", "answer": "Sad.", "asks": "emotion"}]
    assert len(parse_pairs("Pairs: " + json.dumps([pair, pair]) + " hope it helps", 1, 3).pairs) == 2
    for text, reason in [("no json at all", "not_json"), ('{"foo": 1}', "schema_invalid"),
                         (json.dumps({"pairs": [pair, {"type": "X", "question": "q", "answer": "a"}]}), "too_few_pairs")]:
        with pytest.raises(InvalidGeneration) as err:
            parse_pairs(text, 2, 6)
        assert err.value.reason == reason


def test_parser_counts_malformed_and_surplus_pairs():
    good = {"type": "C", "question": "q", "answer": "a"}
    parsed = parse_pairs(json.dumps({"pairs": [good, {"type": "C"}, good, good]}), 1, 2)
    assert len(parsed.pairs) == 2 and parsed.dropped == {"malformed_pair": 1, "over_limit": 1}


# --- filters ---------------------------------------------------------------------------------
def test_filters_drop_each_kind_of_bad_pair_and_count_it_by_reason():
    pairs = [
        {"type": "DP", "question": "What emotion does the speaker express?", "answer": "They sound sad."},
        {"type": "DP", "question": "What emotion does the speaker express?", "answer": "They sound sad."},
        {"type": "DP", "question": "What emotion does the speaker express?", "answer": "They sound quite sad."},
        {"type": "DP", "question": "Which emotion is the speaker expressing?", "answer": "Sadness, mostly."},
        {"type": "C", "question": "What does the text say about the job?", "answer": "They got it."},
        {"type": "C", "question": "Based on the transcript, where are they?", "answer": "At home."},
        {"type": "DP", "question": "What is the speaker's valence?", "answer": "Valence is 0.21."},
        {"type": "CP", "question": "Why are they upset?", "answer": " ".join(["word"] * 61)},
        {"type": "C", "question": "What does the speaker say about the job?", "answer": "That they got it."},
    ]
    res = filter_pairs(pairs, FilterConfig())
    assert res.dropped == {"exact_duplicate": 1, "near_duplicate": 1, "paraphrase": 1, "assumes_transcript": 3,
                           "answer_too_long": 1}
    assert [p["question"] for p in res.kept] == ["What emotion does the speaker express?",
                                                 "What does the speaker say about the job?"]


def test_leakage_check_drops_a_pair_copied_from_an_eval_set_and_eval_clips_by_key():
    eval_meta = {"key": "evalclip", "qa": [{"question": "Why does the speaker sound so tense here?",
                                            "answer": "Because the deadline moved up and they are anxious about it."}]}
    sets = EvalSets.from_metas([eval_meta])
    copied = {"type": "CP", "question": "Why does the speaker sound so tense?",
              "answer": "Because the deadline moved up and they are anxious about it."}
    fresh = {"type": "DP", "question": "How does the speaker sound?", "answer": "Calm and content."}
    res = filter_pairs([copied, fresh], FilterConfig(), sets.leaks_text)
    assert res.dropped == {"leak_text": 1} and res.kept == [fresh]
    assert sets.leaks_key(GenInput("evalclip", "x")) and sets.leaks_key(GenInput("evalclip_w001", "x", parents=("evalclip",)))
    assert not sets.leaks_key(GenInput("other", "x"))


# --- template backend and inputs --------------------------------------------------------------
def test_template_backend_gives_all_three_types_deterministically_by_seed():
    inp = input_from_meta(clip_metas(3)[2], "gold")
    first, again, other = template_pairs(inp, 0), template_pairs(inp, 0), template_pairs(inp, 1)
    assert first == again and {p["type"] for p in first} == {"C", "CP", "DP"}
    assert 3 <= len(first) <= 6
    assert any(template_pairs(inp, s) != first for s in range(1, 6)) or first != other
    emotion = inp.emotion
    for p in first:
        if p["type"] in ("CP", "DP"):
            assert emotion in p["answer"]
        if p["type"] == "CP":
            assert "nobody told them about the meeting" in p["answer"].lower()
        if p["type"] == "C":
            assert "meeting" in p["answer"]


def test_permute_labels_changes_labels_but_not_transcripts():
    inputs = [input_from_meta(m, "gold") for m in clip_metas(12)]
    permuted = permute_labels(inputs, seed=3)
    assert [x.transcript for x in permuted] == [x.transcript for x in inputs]
    assert [x.key for x in permuted] == [x.key for x in inputs]
    assert sum(a.labels != b.labels for a, b in zip(inputs, permuted, strict=True)) >= 6
    canon = lambda xs: sorted(json.dumps(x.labels, sort_keys=True) for x in xs)  # noqa: E731
    assert canon(permuted) == canon(inputs)
    assert permute_labels(inputs, seed=3) == permuted and permute_labels(inputs, seed=4) != permuted


def test_label_source_picks_gold_or_an_annotator():
    meta = clip_metas(1)[0]
    assert input_from_meta(meta, "gold").emotion == EMOTIONS[0]
    assert input_from_meta(meta, "pred:ann").emotion == EMOTIONS[1]
    with pytest.raises(ValueError, match="gold"):
        GenerateConfig(labels="none")


def test_template_run_writes_implicit_shards_with_valid_pairs(tmp_path):
    metas = clip_metas(6)
    metas[4]["transcript"] = ""  # cannot be described: listed as failed, not written
    src = write_clips(tmp_path / "src", metas)
    report = generate(src, tmp_path / "out", GenerateConfig(backend="template", labels="pred:ann", seed=5), quiet=True)
    index = ShardIndex.load(tmp_path / "out")
    assert [r.key for r in index.samples] == [m["key"] for i, m in enumerate(metas) if i != 4]
    assert {r.source_kind for r in index.samples} == {"implicit"}
    for row, meta, _ in iter_samples(index):
        validate_sample(meta)
        assert set(row.qa_types) == {"C", "CP", "DP"}
        assert all(p["origin"] == "template" and p["generator"]["backend"] == "template" for p in meta["qa"])
        assert meta["provenance"]["generate"]["labels"] == "pred:ann"
    failures = [json.loads(x) for x in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()]
    assert failures == [{"key": "clip004", "reason": "no_transcript", "detail": failures[0]["detail"]}]
    assert report["clips"]["written"] == 5 and report["failures"] == {"no_transcript": 1}
    assert report["pairs"]["total"] == sum(len(m["qa"]) for _, m, _ in iter_samples(index))


def test_eval_clips_are_never_generated_for(tmp_path):
    metas = clip_metas(4)
    src = write_clips(tmp_path / "src", metas)
    evals = write_clips(tmp_path / "eval", [dict(metas[1], qa=[{"question": "q?", "answer": "a.", "type": "C",
                                                                 "origin": "human"}])])
    report = generate(src, tmp_path / "out", GenerateConfig(backend="template", eval_sets=[str(evals)]), quiet=True)
    assert [r.key for r in ShardIndex.load(tmp_path / "out").samples] == ["clip000", "clip002", "clip003"]
    assert report["clips"]["leak_key"] == 1


def test_condensed_window_tells_the_generator_which_part_was_labelled_and_who_its_parent_is():
    meta = dict(clip_metas(1)[0], key="clip000_w002", window={"parent": "clip000", "index": 2,
                                                              "centre": [4.0, 6.0], "cut": [3.0, 7.0]})
    inp = input_from_meta(meta, "gold")
    assert inp.parents == ("clip000",) and inp.label_span == (1.0, 3.0)
    assert EvalSets(keys=["clip000"]).leaks_key(inp)


def test_journal_cuts_a_torn_line_and_refuses_other_settings(tmp_path):
    from paralm.creation.generate.journal import Journal, JournalMismatch

    path = tmp_path / "journal.jsonl"
    journal = Journal(path, {"backend": "template", "seed": 0})
    journal.append({"key": "a", "status": "ok", "pairs": []})
    with open(path, "ab") as f:
        f.write(b'{"key": "b", "status": "o')  # a kill in the middle of a write
    again = Journal(path, {"backend": "template", "seed": 0})
    assert set(again.records) == {"a"}
    again.append({"key": "c", "status": "ok", "pairs": []})
    assert set(Journal(path, {"backend": "template", "seed": 0}).records) == {"a", "c"}
    with pytest.raises(JournalMismatch, match="seed"):
        Journal(path, {"backend": "template", "seed": 1})
