"""Tiny, file-free building blocks for tests and CPU demo configs.

Everything here is deterministic and built in code: no folder, no download. The tiny tokenizer is
character level over printable ASCII, which keeps the vocabulary at about a hundred ids while still
rendering any English question and answer.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from paralm.model.config import EncoderConfig, LLMConfig, LoraSettings, ProjectorConfig, SpeechLMConfig

TINY_SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
TINY_ROLES = ("<|system|>", "<|user|>", "<|assistant|>")
# Each turn: role marker, content, end-of-turn (= eos, so generation stops after the answer).
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Character-level tokenizer: 4 specials, printable ASCII (no tabs/newlines), 3 chat role markers."""
    chars = [c for c in string.printable if c not in "\t\n\r\x0b\x0c"]
    vocab = {tok: i for i, tok in enumerate([*TINY_SPECIALS, *chars])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (*TINY_SPECIALS, *TINY_ROLES)])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    tok.chat_template = TINY_CHAT_TEMPLATE
    return tok


def word_tokenizer(texts: Iterable[str], vocab_size: int = 4096) -> PreTrainedTokenizerFast:
    """Word-piece-sized BPE trained on `texts` (whole frequent words become one token).

    For CPU demos whose vocabulary is small: answers such as an emotion label become one or two tokens,
    so a tiny LLM learns them in a few hundred steps, where a character tokenizer must learn to spell.
    Unseen words still encode (the byte-free character alphabet of the texts is kept). Deterministic.
    """
    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation()])
    core.decoder = decoders.Metaspace()
    specials = [*TINY_SPECIALS, *TINY_ROLES]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=sorted(set(string.printable) - set("\t\n\r\x0b\x0c")))
    core.train_from_iterator(sorted(set(texts)), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    tok.chat_template = TINY_CHAT_TEMPLATE
    return tok


BUILTIN_TOKENIZERS = {"tiny": tiny_tokenizer}


def tiny_whisper_config(**overrides: Any) -> dict[str, Any]:
    """A 2-layer, 64-wide Whisper (80 mels, 30-s window); pass overrides to change any field."""
    base = dict(
        d_model=64, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128,
        decoder_layers=1, decoder_attention_heads=4, decoder_ffn_dim=128,
        num_mel_bins=80, max_source_positions=1500, max_target_positions=64, vocab_size=64, dropout=0.0,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,  # inside the tiny vocab
        # At the usual 0.02 the random convs are so weak that the sinusoidal positions swamp the audio and a
        # frozen random encoder barely tells clips apart; 0.1 keeps clips distinguishable for CPU demos.
        init_std=0.1,
    )
    return {**base, **overrides}


def tiny_wav2vec2_config(**overrides: Any) -> dict[str, Any]:
    """A 2-layer, 32-wide wav2vec2 with the real 320x conv stack (layer norm, so padding cannot leak into stats)."""
    base = dict(
        model_type="wav2vec2", hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),  # 320x, 50 Hz
        feat_extract_norm="layer",
        do_stable_layer_norm=True, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        mask_time_prob=0.0, hidden_dropout=0.0, attention_dropout=0.0, feat_proj_dropout=0.0,
        activation_dropout=0.0, layerdrop=0.0, vocab_size=32,
    )
    return {**base, **overrides}


_TINY_LLMS: dict[str, dict[str, Any]] = {
    "llama": dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024),
    "qwen2": dict(model_type="qwen2", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024),
}


def tiny_llm_config(kind: str = "llama", **overrides: Any) -> dict[str, Any]:
    """A 2-layer, 64-wide causal LM config dict; vocab size and token ids come from the tokenizer."""
    if kind not in _TINY_LLMS:
        raise ValueError(f"unknown tiny LLM kind {kind!r}; valid: {', '.join(sorted(_TINY_LLMS))}")
    return {**_TINY_LLMS[kind], **overrides}


def tiny_speech_lm_config(
    encoder: str = "whisper",
    projector: str = "stack_mlp",
    llm_kind: str = "llama",
    stack: int = 4,
    encoder_trainable: str = "frozen",
    llm_trainable: str = "lora",
    lora_r: int = 8,
    chunk_seconds: float = 30.0,
) -> SpeechLMConfig:
    """A complete random-init Speech-LLM config that builds in well under a second on CPU."""
    encoder_configs = {"whisper": tiny_whisper_config, "hf_audio": tiny_wav2vec2_config}
    if encoder not in encoder_configs:
        raise ValueError(f"unknown encoder {encoder!r}; valid: {', '.join(sorted(encoder_configs))}")
    lora = LoraSettings(r=lora_r, alpha=2 * lora_r, dropout=0.0)
    return SpeechLMConfig(
        encoder=EncoderConfig(name=encoder, config=encoder_configs[encoder](), trainable=encoder_trainable,
                              lora=lora, chunk_seconds=chunk_seconds),
        projector=ProjectorConfig(name=projector, stack=stack),
        llm=LLMConfig(config=tiny_llm_config(llm_kind), tokenizer="builtin:tiny", trainable=llm_trainable,
                      lora=LoraSettings(r=lora_r, alpha=2 * lora_r, dropout=0.0)),
    )
