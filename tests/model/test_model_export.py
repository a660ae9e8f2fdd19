"""Export -> from_export reproduces logits; the adapter folder loads with PeftModel.from_pretrained."""

from __future__ import annotations

import json

import pytest
import torch
from modelkit import clip_features, next_token_loss, prompt_batch
from peft import PeftModel
from transformers import AutoConfig, AutoModelForCausalLM, WhisperConfig, WhisperModel

from paralm.model import (
    EncoderConfig,
    LLMConfig,
    LoraSettings,
    ProjectorConfig,
    SpeechLM,
    SpeechLMConfig,
    build_tokenizer,
    load_llm,
    tiny_llm_config,
    tiny_speech_lm_config,
    tiny_tokenizer,
    tiny_whisper_config,
)


def _train_steps(model: SpeechLM, steps: int = 2) -> tuple[torch.Tensor, ...]:
    """A couple of Adam steps so every trained tensor (LoRA B included) moves off its init."""
    feats, lengths = clip_features(model.audio_token_spec(), [0.6, 1.1], seed=11)
    batch = prompt_batch(model, ["Who?", "How?"], lengths, answers=["me", "loud"])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        next_token_loss(model(batch["input_ids"], batch["attention_mask"], feats, lengths), batch["labels"]).backward()
        opt.step()
    model.eval()
    return batch["input_ids"], batch["attention_mask"], feats, lengths


def _logits(model: SpeechLM, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(*inputs)


@pytest.mark.parametrize("encoder_trainable,llm_trainable", [("lora", "lora"), ("frozen", "full")])
def test_export_then_from_export_reproduces_logits_for_random_init_models(tmp_path, encoder_trainable, llm_trainable):
    torch.manual_seed(0)
    model = SpeechLM.from_config(tiny_speech_lm_config(encoder_trainable=encoder_trainable,
                                                       llm_trainable=llm_trainable))
    inputs = _train_steps(model)
    model.export(tmp_path / "export")
    torch.manual_seed(123)  # a different random init must not matter
    rebuilt = SpeechLM.from_export(tmp_path / "export").eval()
    assert torch.equal(_logits(model, inputs), _logits(rebuilt, inputs))
    files = json.loads((tmp_path / "export" / "config.json").read_text())["files"]
    assert ("llm" in files) == (llm_trainable == "full") and ("adapter" in files) == (llm_trainable == "lora")


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory):
    """A tiny Whisper and a tiny Llama saved as ordinary Hugging Face folders (with tokenizer)."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(5)
    WhisperModel(WhisperConfig(**tiny_whisper_config())).save_pretrained(root / "whisper")
    tok = tiny_tokenizer()
    options = tiny_llm_config("qwen2")
    llm_config = AutoConfig.for_model(options.pop("model_type"), vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                                      eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id, **options)
    AutoModelForCausalLM.from_config(llm_config).save_pretrained(root / "llm")
    tok.save_pretrained(root / "llm")
    return root


def _folder_config(root) -> SpeechLMConfig:
    return SpeechLMConfig(
        encoder=EncoderConfig(path=str(root / "whisper"), trainable="lora", lora=LoraSettings(r=4, alpha=8)),
        projector=ProjectorConfig(name="gated_mlp", stack=5),
        llm=LLMConfig(path=str(root / "llm"), trainable="lora", lora=LoraSettings(r=4, alpha=8, dropout=0.0)),
    )


def test_export_from_model_folders_holds_only_trained_parts_and_reloads_exactly(tmp_path, model_folders):
    cfg = _folder_config(model_folders)
    model = SpeechLM.from_config(cfg)
    inputs = _train_steps(model)
    out = model.export(tmp_path / "export")
    assert not (out / "init_weights.safetensors").exists()  # base weights come from the folders
    assert (out / "adapter" / "adapter_config.json").is_file()
    rebuilt = SpeechLM.from_export(out, cfg).eval()
    assert torch.equal(_logits(model, inputs), _logits(rebuilt, inputs))


def test_adapter_folder_loads_with_peft_from_pretrained(tmp_path, model_folders):
    cfg = _folder_config(model_folders)
    model = SpeechLM.from_config(cfg)
    _train_steps(model)
    out = model.export(tmp_path / "export")
    tok = build_tokenizer(cfg.llm, cfg.placeholder_token)
    plain = PeftModel.from_pretrained(load_llm(cfg.llm, tok), str(out / "adapter")).eval()
    ids = torch.tensor([tok.encode("<|user|>hello</s><|assistant|>", add_special_tokens=False)])
    with torch.no_grad():
        expected = model.llm(input_ids=ids).logits
        got = plain(input_ids=ids).logits
    assert torch.allclose(expected, got, atol=1e-6)


def test_from_export_of_a_folder_without_config_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        SpeechLM.from_export(tmp_path)
