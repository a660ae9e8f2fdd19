"""Every QA item records what it asks (`asks`), and the scorers read it instead of guessing.

The demo's own held-out gender phrasings used to be classified as emotion questions by a regex on the
question text, and were scored against the gold emotion whatever the model said. Items now carry
`asks` from where they are made (templates, the LLM generator's parsed pairs, the demo corpus, CSV
manifests); the question-text guess remains only for items without it, and is counted.
"""

from __future__ import annotations

import importlib
import json
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from genkit import clip_metas, write_clips

from paralm.creation.generate import GenerateConfig, generate
from paralm.creation.generate.inputs import input_from_meta
from paralm.creation.generate.parse import parse_pairs
from paralm.creation.generate.prompt import PAIR_SCHEMA
from paralm.creation.generate.template import TEMPLATES, template_pairs
from paralm.data.index import ShardIndex
from paralm.data.manifest import csv_row_to_meta
from paralm.data.reader import iter_samples
from paralm.data.schema import QA_ASKS, SchemaError, validate_sample
from paralm.eval.generation import rows_from_batch
from paralm.eval.labels import infer_asks
from paralm.eval.scorers import label_outcomes, score_predictions
from paralm.formats.predictions import PredictionRow, read_predictions, write_predictions
from paralm.runs.ablate.metrics import item_values

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"
GENDER_QUESTIONS = ("Do you hear a male or a female voice?", "Is the speaker a man or a woman?")


def dp_row(key: str, question: str, answer: str, asks: str | None, **kw) -> PredictionRow:
    return PredictionRow(key=key, question=question, type="DP", reference="", answer=answer, asks=asks,
                         emotion=kw.pop("emotion", "angry"), gender=kw.pop("gender", "female"), **kw)


def test_gender_questions_with_asks_are_scored_against_gender_not_emotion():
    rows = [dp_row(f"g{i}", q, "It is a woman.", "gender") for i, q in enumerate(GENDER_QUESTIONS)]
    rows.append(dp_row("e0", "In one word, how does the speaker sound?", "Angry.", "emotion"))
    outcomes = label_outcomes(rows)
    assert [(o.kind, o.target, o.predicted, o.correct) for o in outcomes] == [
        ("gender", "female", "female", True), ("gender", "female", "female", True),
        ("emotion", "angry", "angry", True)]
    assert item_values(rows, "dp_acc") == {rows[2].item_id: 1.0}  # gender items no longer count as emotion
    scores = score_predictions(rows)
    assert scores["labels"]["gender"]["accuracy"] == 1.0 and scores["labels"]["emotion"]["n"] == 1
    assert scores["dp_asks"] == {"recorded": 3, "inferred": 0, "by_asks": {"emotion": 1, "gender": 2}}


def test_items_without_asks_fall_back_to_the_question_text_and_are_counted():
    rows = [dp_row(f"g{i}", q, "A man.", None, gender="male") for i, q in enumerate(GENDER_QUESTIONS)]
    rows.append(dp_row("e0", "Which emotion do you hear in the voice?", "Sad.", None, emotion="sad"))
    rows.append(dp_row("r0", "Which emotion do you hear in the voice?", "Sad.", "emotion", emotion="sad"))
    outcomes = label_outcomes(rows)
    assert [(o.kind, o.correct, o.asks_inferred) for o in outcomes] == [
        ("gender", True, True), ("gender", True, True), ("emotion", True, True), ("emotion", True, False)]
    assert score_predictions(rows)["dp_asks"]["inferred"] == 3


def test_questions_about_a_dimension_are_not_scored_as_emotion():
    rows = [dp_row("v0", "Does the speaker sound positive or negative?", "Negative; she sounds sad.", "valence"),
            dp_row("a0", "How energetic does the speaker sound?", "Low energy, sad.", None)]
    assert label_outcomes(rows) == []
    scores = score_predictions(rows)
    assert scores["dp_no_target"] == 2
    assert scores["dp_asks"] == {"recorded": 1, "inferred": 1, "by_asks": {"arousal": 1, "valence": 1}}


@pytest.mark.parametrize(("qtype", "question", "asks"), [
    ("C", "Is what the speaker says good or bad news?", "content"),
    ("CP", "How should you answer the speaker?", "context"),
    ("DP", "What is the gender of the speaker?", "gender"),
    ("DP", "Is the speaker's voice male or female?", "gender"),
    ("DP", "Is the man angry?", "emotion"),
    ("DP", "Does the speaker sound positive or negative?", "valence"),
])
def test_fallback_guess_of_what_a_question_asks(qtype, question, asks):
    assert infer_asks(qtype, question) == asks


def test_prediction_rows_keep_asks_through_a_file_and_refuse_unknown_values(tmp_path):
    path = tmp_path / "p.jsonl"
    write_predictions(path, [dp_row("k", GENDER_QUESTIONS[0], "A woman.", "gender")])
    assert read_predictions(path)[0].asks == "gender"
    path.write_text(json.dumps({"key": "k", "question": "q?", "type": "DP", "reference": "", "answer": "a",
                                "asks": "mood"}) + "\n")
    with pytest.raises(ValueError, match=r"p.jsonl:1: asks 'mood'.*emotion"):
        read_predictions(path)


def test_generation_rows_take_asks_from_the_batch_meta():
    batch = SimpleNamespace(keys=["a", "b"], questions=list(GENDER_QUESTIONS), question_types=["DP", "DP"],
                            references=["female", "male"],
                            meta=[{"asks": "gender", "labels": {"gold": {"gender": "female"}}}, {"labels": {}}])
    first, second = rows_from_batch(batch, ["A woman.", "A man."])
    assert (first.asks, second.asks) == ("gender", None)


def test_schema_accepts_known_asks_refuses_unknown_ones_and_keeps_it_optional():
    base = {"key": "k1", "transcript": "hi", "duration": 1.0, "corpus": "c", "split": "test"}
    pair = {"question": "Is the speaker a man or a woman?", "answer": "A man.", "type": "DP", "origin": "human"}
    validate_sample({**base, "qa": [pair]})
    validate_sample({**base, "qa": [{**pair, "asks": "gender"}]})
    with pytest.raises(SchemaError, match=r"qa\[0\]\.asks: 'mood' is not one of content, emotion, gender"):
        validate_sample({**base, "qa": [{**pair, "asks": "mood"}]})


def test_every_template_pair_records_what_it_asks():
    for qtype, templates in TEMPLATES.items():
        for question, _, _, asks in templates:
            assert asks in QA_ASKS and (asks == infer_asks(qtype, question)), question
    meta = clip_metas(3)[2]
    meta["labels"]["gold"]["gender"] = "female"
    pairs = [p for seed in range(8) for p in template_pairs(input_from_meta(meta, "gold"), seed, 6, 12)]
    assert {(p["question"], p["asks"]) for p in pairs if p["type"] == "DP"} >= {
        ("Is the speaker's voice male or female?", "gender"), ("What emotion does the speaker convey?", "emotion")}
    assert {p["asks"] for p in pairs if p["type"] == "C"} == {"content"}


def test_template_generation_writes_asks_into_the_shards(tmp_path):
    src = write_clips(tmp_path / "src", clip_metas(2))
    generate(src, tmp_path / "out", GenerateConfig(backend="template"), quiet=True)
    qa = [p for _, meta, _ in iter_samples(ShardIndex.load(tmp_path / "out")) for p in meta["qa"]]
    assert qa and all(p["asks"] in QA_ASKS for p in qa)
    assert {p["asks"] for p in qa if p["type"] == "CP"} == {"context"}


def test_llm_pairs_keep_a_valid_asks_and_get_the_guess_when_it_is_missing_or_unknown():
    reply = json.dumps({"pairs": [
        {"type": "DP", "asks": "gender", "question": "Who is talking, a man or a woman?", "answer": "A woman."},
        {"type": "DP", "question": "Do you hear a male or a female voice?", "answer": "Male."},
        {"type": "DP", "asks": "mood", "question": "How does she sound?", "answer": "Sad."}]})
    pairs = parse_pairs(reply, 1, 5).pairs
    assert [p["asks"] for p in pairs] == ["gender", "gender", "emotion"]
    assert "asks" in PAIR_SCHEMA["properties"]["pairs"]["items"]["required"]


def test_demo_corpus_questions_record_what_they_ask(monkeypatch):
    monkeypatch.syspath_prepend(str(DEMO))
    qa, sentences = importlib.import_module("qa"), importlib.import_module("sentences")
    try:
        sentence = sentences.all_sentences()[0]
        for split in ("train", "test"):
            pairs = qa.build_qa(sentence, "angry", "female", split, random.Random(0))
            assert all(p["asks"] == qa.ASKS[p["generator"]["kind"]] for p in pairs)
            assert {p["asks"] for p in pairs if p["type"] == "DP"} == {"emotion", "gender"}
    finally:
        for name in ("qa", "sentences", "presets"):
            sys.modules.pop(name, None)


def test_csv_manifest_qa_asks_column_becomes_the_pair_asks():
    meta = csv_row_to_meta({"audio": "a.wav", "key": "a", "question": "Is the speaker a man or a woman?",
                            "answer": "A man.", "qa_type": "DP", "qa_asks": "gender"})
    assert meta["qa"] == [{"question": "Is the speaker a man or a woman?", "answer": "A man.", "type": "DP",
                           "origin": "human", "asks": "gender"}]
