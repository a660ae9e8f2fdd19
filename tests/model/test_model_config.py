"""Configs, tokenizers and the config-only AudioTokenSpec: validation errors and no-weights paths."""

from __future__ import annotations

import pytest
import torch
from transformers import WhisperConfig

from paralm.model import (
    EncoderConfig,
    LLMConfig,
    LoraSettings,
    ProjectorConfig,
    SpeechLM,
    SpeechLMConfig,
    audio_token_spec_for,
    build_tokenizer,
    load_llm,
    tiny_llm_config,
    tiny_speech_lm_config,
    tiny_tokenizer,
    tiny_whisper_config,
)
from paralm.model.trainable import lora_targets


@pytest.mark.parametrize("make,message", [
    (lambda: EncoderConfig(config={}, trainable="partly"), "encoder.trainable='partly' .* frozen, lora, full"),
    (lambda: ProjectorConfig(trainable="lora"), "projector.trainable='lora' .* frozen, full"),
    (lambda: LLMConfig(config={}, tokenizer="builtin:tiny", trainable="half"), "llm.trainable='half'"),
    (lambda: EncoderConfig(path="/x", config={}), "exactly one of `path`.*got both"),
    (lambda: LLMConfig(tokenizer="builtin:tiny"), "exactly one of `path`.*got neither"),
    (lambda: LLMConfig(config={"model_type": "llama"}), "llm.tokenizer is required"),
    (lambda: ProjectorConfig(stack=0), "stack must be >= 1"),
    (lambda: LoraSettings(r=0), "lora.r must be >= 1"),
])
def test_bad_config_values_raise_one_line_errors_naming_the_choice(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_config_round_trips_through_a_dict():
    cfg = tiny_speech_lm_config(projector="conv", encoder_trainable="lora")
    again = SpeechLMConfig.from_dict(cfg.to_dict())
    assert again == cfg and isinstance(again.encoder.lora, LoraSettings)


def test_tiny_tokenizer_is_deterministic_and_round_trips_text():
    a, b = tiny_tokenizer(), tiny_tokenizer()
    assert a.get_vocab() == b.get_vocab()
    text = "Why does she sound angry, 3 times?"
    ids = a.encode(text, add_special_tokens=False)
    assert len(ids) == len(text) and a.decode(ids) == text


def test_tiny_chat_template_renders_turns_and_generation_prompt():
    tok = tiny_tokenizer()
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    assert tok.apply_chat_template(turns, tokenize=False) == "<|user|>hi</s><|assistant|>yo</s>"
    prompt = tok.apply_chat_template(turns[:1], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|user|>hi</s><|assistant|>"


def test_build_tokenizer_adds_the_placeholder_as_one_special_token():
    tok = build_tokenizer(LLMConfig(config={}, tokenizer="builtin:tiny"), "<|audio|>")
    ids = tok.encode("a<|audio|><|audio|>b", add_special_tokens=False)
    pid = tok.convert_tokens_to_ids("<|audio|>")
    assert ids[1:3] == [pid, pid] and len(ids) == 4
    assert tok.decode(ids, skip_special_tokens=True) == "ab"


def test_unknown_builtin_tokenizer_lists_the_choices():
    with pytest.raises(ValueError, match="unknown builtin tokenizer 'builtin:huge'; valid: builtin:tiny"):
        build_tokenizer(LLMConfig(config={}, tokenizer="builtin:huge"), "<|audio|>")


def test_missing_llm_folder_names_the_path(tmp_path):
    missing = tmp_path / "no-llm"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        build_tokenizer(LLMConfig(path=str(missing)), "<|audio|>")


def test_audio_token_spec_for_reads_config_files_only(tmp_path):
    WhisperConfig(**tiny_whisper_config(num_mel_bins=128)).save_pretrained(tmp_path / "whisper")  # no weights
    tiny_tokenizer().save_pretrained(tmp_path / "tok")
    cfg = SpeechLMConfig(
        encoder=EncoderConfig(path=str(tmp_path / "whisper"), chunk_seconds=20.0),
        projector=ProjectorConfig(stack=15),
        llm=LLMConfig(path=str(tmp_path / "absent-llm"), tokenizer=str(tmp_path / "tok"), allow_foreign_tokenizer=True),
    )
    spec = audio_token_spec_for(cfg)
    assert spec.features.n_mels == 128 and spec.chunk_frames == 2000 and spec.stack == 15
    assert spec.placeholder_token_id == len(tiny_tokenizer())  # appended after the base vocabulary
    assert spec.num_tokens(16000 * 30) == 100  # 3000 mel frames -> 1500 encoder frames -> 100 tokens


def test_config_spec_equals_the_built_models_spec():
    cfg = tiny_speech_lm_config(encoder="hf_audio", stack=2)
    torch.manual_seed(0)
    assert audio_token_spec_for(cfg) == SpeechLM.from_config(cfg).audio_token_spec()


def test_default_lora_targets_are_found_by_name():
    cfg = tiny_speech_lm_config()
    llm = load_llm(cfg.llm, build_tokenizer(cfg.llm, "<|audio|>"))
    assert lora_targets(llm, LoraSettings()) == ["q_proj", "k_proj", "v_proj", "o_proj"]
    encoder = SpeechLM.from_config(cfg).encoder.model
    assert lora_targets(encoder, LoraSettings()) == ["q_proj", "k_proj", "v_proj", "out_proj"]
    with pytest.raises(ValueError, match=r"\['qkv'\] not found; linear layers here: .*fc1"):
        lora_targets(encoder, LoraSettings(target_modules=["qkv"]))


def test_random_init_llm_takes_vocab_and_special_ids_from_the_tokenizer():
    cfg = LLMConfig(config=tiny_llm_config("qwen2"), tokenizer="builtin:tiny")
    tok = build_tokenizer(cfg, "<|audio|>")
    llm = load_llm(cfg, tok)
    assert llm.get_input_embeddings().num_embeddings == len(tok)
    assert llm.config.eos_token_id == tok.eos_token_id and llm.config.pad_token_id == tok.pad_token_id
