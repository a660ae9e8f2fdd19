"""Training mode: what trains is in train mode, frozen bases stay deterministic, evaluation is in eval.

The unit tests build tiny models; the fit tests run `paralm fit` on experiments/debug_cpu.yaml through
the installed console script with a callback (tests/fitprobe.py) that records, during training_step,
which modules train and how often HF's gradient-checkpointing function ran.
"""

from __future__ import annotations

import json

import pytest
import torch
from modelkit import clip_features, prompt_batch

from paralm.model import SpeechLM, tiny_speech_lm_config


def _noisy_base_model(llm_trainable: str = "lora", lora_dropout: float = 0.0, encoder_trainable: str = "lora"):
    """Tiny model whose bases are configured with dropout: LLM attention 0.1, Whisper encoder 0.1 + layer drop."""
    cfg = tiny_speech_lm_config(llm_trainable=llm_trainable, encoder_trainable=encoder_trainable)
    cfg.llm.config = {**cfg.llm.config, "attention_dropout": 0.1}
    cfg.llm.lora.dropout = lora_dropout
    cfg.encoder.config = {**cfg.encoder.config, "dropout": 0.1, "attention_dropout": 0.1, "encoder_layerdrop": 0.5}
    torch.manual_seed(0)
    model = SpeechLM.from_config(cfg)
    with torch.no_grad():  # LoRA B starts at zero; make the adapters matter
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    return model


def _two_train_forwards(model: SpeechLM) -> tuple[torch.Tensor, torch.Tensor]:
    feats, lengths = clip_features(model.audio_token_spec(), [0.6, 1.1], seed=3)
    batch = prompt_batch(model, ["How does the speaker feel?", "Why?"], lengths, answers=["calm", "sad"])
    model.train()
    return tuple(model(batch["input_ids"], batch["attention_mask"], feats, lengths) for _ in range(2))


def test_frozen_bases_with_dropout_give_identical_logits_over_two_train_mode_forwards():
    model = _noisy_base_model(lora_dropout=0.0)
    first, second = _two_train_forwards(model)
    assert torch.equal(first, second)
    assert model.llm.training and model.encoder.training  # LoRA inside both: on the path, in train mode


@pytest.mark.parametrize("llm_trainable,lora_dropout", [("full", 0.0), ("lora", 0.5)])
def test_dropout_of_trained_weights_stays_on_in_train_mode(llm_trainable, lora_dropout):
    model = _noisy_base_model(llm_trainable=llm_trainable, lora_dropout=lora_dropout, encoder_trainable="frozen")
    first, second = _two_train_forwards(model)
    assert not torch.equal(first, second)


def test_train_mode_follows_trained_parameters_and_eval_switches_everything_off():
    model = _noisy_base_model(lora_dropout=0.5, encoder_trainable="frozen").train()
    modules = dict(model.named_modules())
    for name, module in modules.items():
        owns_trained = any(p.requires_grad for p in module.parameters(recurse=False))
        if owns_trained:
            assert module.training, name
        if name.endswith("lora_dropout.default"):
            assert module.training, name  # LoRA's own dropout trains with the adapter
        if name.endswith("base_layer") or name.endswith("embed_tokens") or name.startswith("encoder"):
            assert not module.training, name  # frozen weights: eval
    assert model.projector.training
    model.eval()
    assert not any(m.training for m in model.modules())


@pytest.fixture(scope="module")
def fit(tmp_path_factory):
    from fitprobe import debug_fit

    return debug_fit(tmp_path_factory)


def test_paralm_fit_trains_every_module_that_owns_a_trained_parameter(fit):
    probe = json.loads(fit["probe"].read_text())
    assert [s["step"] for s in probe["steps"]] == [0, 1]
    for step in probe["steps"]:
        assert step["owners"] > 0 and step["owners_in_eval"] == []
        assert step["frozen_in_train"] == []  # frozen encoder, embeddings, norms, base projections: eval


def test_paralm_fit_validates_with_every_module_in_eval_mode(fit):
    probe = json.loads(fit["probe"].read_text())
    assert probe["validation_batches"] > 0 and probe["training_in_validation"] == []


def test_gradient_checkpointing_option_runs_the_hf_checkpoint_function_during_fit(fit):
    probe = json.loads(fit["probe"].read_text())
    assert probe["checkpoint_calls"] == 2 * 2  # 2 LLM layers x 2 training steps (the encoder is frozen)
