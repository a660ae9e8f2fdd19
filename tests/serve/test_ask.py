"""`paralm ask MODEL AUDIO... [QUESTION]` through the installed console script, on a tiny exported model."""

from __future__ import annotations

import json

import pytest
from fitprobe import run_paralm
from servekit import MAX_NEW_TOKENS, tiny_export, write_clips

from paralm.data.collate import Collator, FeedItem
from paralm.data.prompts import PromptConfig
from paralm.data.reader import DecodeOptions, LoadedSample, decode_audio
from paralm.model.speech_lm import SpeechLM
from paralm.serve.metadata import parse_metadata_text

QUESTION = "How does the speaker sound?"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ask")
    return {"export": tiny_export(tmp / "export"), "clips": write_clips(tmp / "clips"), "tmp": tmp}


def data_path_answer(model: SpeechLM, path, question: str) -> str:
    """SpeechLM.generate on one clip alone, decoded, resampled and collated by the data path."""
    spec = model.audio_token_spec()
    audio = decode_audio(path.read_bytes(), DecodeOptions(sample_rate=spec.features.sample_rate))
    sample = LoadedSample(key="k", audio=audio, sample_rate=spec.features.sample_rate, shard="",
                          meta={"qa": [{"question": question, "answer": "", "type": "C"}]})
    batch = Collator(model.tokenizer, spec, PromptConfig(), for_generation=True)([FeedItem(sample, 0, "s")])
    return model.generate(batch.input_ids, batch.attention_mask, batch.features, batch.feature_lengths,
                          max_new_tokens=MAX_NEW_TOKENS)[0]


def test_ask_answers_wav_files_as_speechlm_generate_does_through_the_data_path(setup):
    clips = setup["clips"]  # 8 to 44.1 kHz, mono and stereo: resampled and averaged as in training
    proc = run_paralm(["ask", str(setup["export"]), *map(str, clips), QUESTION,
                       "--max-new-tokens", str(MAX_NEW_TOKENS), "--json"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    model = SpeechLM.from_export(setup["export"]).eval()
    expected = [data_path_answer(model, clip, QUESTION) for clip in clips]
    assert [row["answer"] for row in out["answers"]] == expected  # one batch = each clip alone
    assert len(set(expected)) > 1  # the answers depend on the audio, so the comparison means something
    first = out["answers"][0]
    assert first["question"] == QUESTION and f"Instruction: {QUESTION}" in first["prompt"]
    assert first["prompt_settings"] == {"mode": "plain", "metadata": "none", "oracle": False}
    assert set(out["timing"]) == {"load_s", "decode_s", "generate_s"}


def test_ask_refuses_an_export_without_prompt_settings_with_the_reason(setup):
    bare = tiny_export(setup["tmp"] / "bare", prompt=None)
    proc = run_paralm(["ask", str(bare), str(setup["clips"][0])])
    assert proc.returncode == 2
    assert "records no prompt settings" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_ask_explicit_model_reads_given_metadata_and_refuses_to_guess(setup):
    explicit = tiny_export(setup["tmp"] / "explicit", PromptConfig(mode="explicit", metadata="pred:ser@oof"))
    proc = run_paralm(["ask", str(explicit), str(setup["clips"][0])])
    assert proc.returncode == 2 and "trained in explicit mode" in proc.stderr and "--metadata" in proc.stderr
    proc = run_paralm(["ask", str(explicit), str(setup["clips"][0]), "--metadata", "emotion=angry,arousal=0.8",
                       "--max-new-tokens", "2", "--json"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    prompt = json.loads(proc.stdout)["answers"][0]["prompt"]
    assert "Paralinguistic cues: emotion: angry; arousal: 0.80 (high); valence: unknown" in prompt


def test_ask_names_a_missing_audio_file(setup):
    proc = run_paralm(["ask", str(setup["export"]), str(setup["tmp"] / "nope.wav")])
    assert proc.returncode == 2 and "nope.wav: no such audio file" in proc.stderr


def test_metadata_text_parses_labels_and_refuses_unknown_fields_and_non_numbers():
    assert parse_metadata_text("emotion=angry, arousal=0.8") == {"emotion": "angry", "arousal": 0.8}
    with pytest.raises(ValueError, match="unknown metadata field 'mood'"):
        parse_metadata_text("mood=happy")
    with pytest.raises(ValueError, match="arousal='high' is not a number"):
        parse_metadata_text("arousal=high")


def test_export_records_the_training_prompt_from_the_run_config_and_ask_reads_it_back(setup, tmp_path):
    from paralm.export import _record_training_prompt
    from paralm.prompt_record import find_run_config
    from paralm.serve.model_source import training_prompt

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = run / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(b"")
    (run / "config.yaml").write_text("data:\n  train_prompt:\n    mode: explicit\n    metadata: pred:ser@oof\n"
                                     "    numbers: false\n    system: Be brief.\n")
    assert find_run_config(ckpt) == run / "config.yaml"
    export = tiny_export(tmp_path / "export", prompt=None)
    _record_training_prompt(ckpt, export, None)
    recorded = json.loads((export / "config.json").read_text())["prompt"]
    assert recorded["from"] == [str(run / "config.yaml")]
    assert training_prompt(export) == PromptConfig(mode="explicit", metadata="pred:ser@oof", numbers=False,
                                                   system="Be brief.")
    assert training_prompt(ckpt) == training_prompt(export)  # a checkpoint reads its run's config.yaml
