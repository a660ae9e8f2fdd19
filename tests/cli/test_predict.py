"""`paralm predict` writes one answer per item of a split, from a checkpoint or an export folder.

The checkpoint comes from the session's shared 2-step `paralm fit` of experiments/debug_cpu.yaml
(tests/fitprobe.py); the split is a handful of tiny clips so that greedy generation stays quick.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from fitprobe import debug_fit, run_paralm
from trainkit import tiny_shards

from paralm.data.datamodule import MixtureDataModule
from paralm.data.reader import SampleReader
from paralm.data.sources import SourceSpec
from paralm.export import export_checkpoint, load_trained
from paralm.fault.exits import UserError
from paralm.formats.predictions import read_predictions
from paralm.predict import answer, check_same_tokenizer, load_for_prediction, prepare_predict

MAX_NEW_TOKENS = 4


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    fit = debug_fit(tmp_path_factory)
    tmp = tmp_path_factory.mktemp("predict")
    shards = tiny_shards(tmp / "data", n=10)
    overlay = tmp / "predict.yaml"
    overlay.write_text(f"data:\n  val_sources:\n    - {{name: general, path: {shards}, kind: general, split: val}}\n"
                       f"model:\n  generation: {{max_new_tokens: {MAX_NEW_TOKENS}}}\n")
    config = ["--config", "experiments/debug_cpu.yaml", "--config", str(overlay), "--data.predict_split", "val",
              "--trainer.default_root_dir", str(tmp / "runs")]
    return {"fit": fit, "tmp": tmp, "shards": shards, "config": config}


def _reference_answers(setup) -> dict[tuple[str, str], str]:
    """SpeechLM.generate on the same items, the model rebuilt by `paralm export`'s own loader."""
    model = load_trained(setup["fit"]["ckpt"]).eval()
    dm = MixtureDataModule(val_sources=[SourceSpec(name="general", path=str(setup["shards"]), split="val")],
                           batch_size=4, num_workers=0)
    dm.attach(model.tokenizer, model.audio_token_spec())
    out = {}
    for batch in dm.generation_dataloader("val"):
        answers = model.generate(batch.input_ids, batch.attention_mask, batch.features, batch.feature_lengths,
                                 max_new_tokens=MAX_NEW_TOKENS)
        out.update({(k, q): a for k, q, a in zip(batch.keys, batch.questions, answers, strict=True)})
    return out


@pytest.fixture(scope="module")
def from_checkpoint(setup):
    proc = run_paralm(["predict", *setup["config"], "--run_name", "from_ckpt", "--ckpt_path", str(setup["fit"]["ckpt"])])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return read_predictions(setup["tmp"] / "runs" / "from_ckpt" / "predictions" / "val-step2.jsonl")


def test_predict_from_checkpoint_answers_every_item_as_speechlm_generate_does(setup, from_checkpoint):
    reference = _reference_answers(setup)
    assert len(from_checkpoint) == len(reference) > 0  # one row per QA item of the split
    assert {(r.key, r.question): r.answer for r in from_checkpoint} == reference
    assert all(r.reference and r.type in ("C", "CP", "DP") for r in from_checkpoint)


def test_predict_from_an_export_folder_gives_the_same_answers(setup, from_checkpoint):
    export = export_checkpoint(setup["fit"]["ckpt"], setup["tmp"] / "export")
    assert json.loads((export / "export_info.json").read_text())["global_step"] == 2
    proc = run_paralm(["predict", *setup["config"], "--run_name", "from_export", "--model.init_from", str(export)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_predictions(setup["tmp"] / "runs" / "from_export" / "predictions" / "val-step2.jsonl")
    assert [(r.key, r.question, r.answer) for r in rows] == [(r.key, r.question, r.answer) for r in from_checkpoint]


def test_answer_gives_the_predicted_answers_for_waveform_and_question_pairs(setup, from_checkpoint):
    loaded = load_for_prediction(setup["fit"]["ckpt"])
    assert loaded.step == 2 and not loaded.model.training
    dm = MixtureDataModule(val_sources=[SourceSpec(name="general", path=str(setup["shards"]), split="val")])
    (source,) = dm.sources("val")
    reader = SampleReader(source.root, sample_rate=loaded.model.audio_token_spec().features.sample_rate)
    pairs, expected = [], []
    for i in range(len(source.items)):
        row, qa = source.item(i)
        sample = reader.read(row)
        question = sample.meta["qa"][qa]["question"]
        pairs.append((torch.from_numpy(sample.audio), question))
        expected.append(next(r.answer for r in from_checkpoint if (r.key, r.question) == (sample.key, question)))
    assert answer(loaded.model, pairs, max_new_tokens=MAX_NEW_TOKENS) == expected


def test_predict_needs_exactly_one_of_checkpoint_and_export():
    for ckpt, export in ((None, None), ("a.ckpt", "exported/")):
        cli = SimpleNamespace(subcommand="predict", config_init={"predict": {"ckpt_path": ckpt}},
                              model=SimpleNamespace(init_from=export))
        with pytest.raises(UserError, match="exactly one of --ckpt_path"):
            prepare_predict(cli)


def test_an_export_whose_tokenizer_differs_from_the_configured_one_is_refused(setup, tmp_path):
    loaded = load_for_prediction(setup["fit"]["ckpt"])
    other = load_trained(setup["fit"]["ckpt"]).tokenizer
    other.add_tokens(["<|not_in_training|>"])
    with pytest.raises(UserError, match="tokenizer differs"):
        check_same_tokenizer(loaded.model, other)
    check_same_tokenizer(loaded.model, load_trained(setup["fit"]["ckpt"]).tokenizer)  # same config: accepted
