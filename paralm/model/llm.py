"""Loading the LLM and its tokenizer from local folders (or building them in code for tests).

`build_tokenizer` reads only tokenizer files, so the CLI can hand the data layer a tokenizer and the
placeholder id before any weights are loaded. `load_llm` then sizes the embedding table to that
tokenizer: the placeholder row (and any other added row) is initialised to the mean of the existing
rows, deterministically, so a model rebuilt from the same folder has the same logits.
"""

from __future__ import annotations

from typing import Any

import torch
from tokenizers import AddedToken
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from paralm.model.builders import BUILTIN_TOKENIZERS
from paralm.model.config import LLMConfig
from paralm.model.weights import require_folder

BUILTIN_PREFIX = "builtin:"


def _base_tokenizer(cfg: LLMConfig) -> PreTrainedTokenizerFast:
    source = cfg.tokenizer if cfg.tokenizer is not None else cfg.path
    if source.startswith(BUILTIN_PREFIX):
        name = source[len(BUILTIN_PREFIX):]
        if name not in BUILTIN_TOKENIZERS:
            valid = ", ".join(BUILTIN_PREFIX + n for n in sorted(BUILTIN_TOKENIZERS))
            raise ValueError(f"unknown builtin tokenizer {source!r}; valid: {valid}")
        return BUILTIN_TOKENIZERS[name]()
    folder = require_folder(source, "tokenizer")
    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    if not isinstance(tok, PreTrainedTokenizerFast):
        raise TypeError(f"tokenizer in {folder} is {type(tok).__name__}; a fast (tokenizers) tokenizer is required")
    return tok


def build_tokenizer(cfg: LLMConfig, placeholder: str) -> PreTrainedTokenizerFast:
    """Tokenizer with the audio placeholder as one special token and a pad token; reads no weights."""
    tok = _base_tokenizer(cfg)
    if cfg.chat_template is not None:
        tok.chat_template = cfg.chat_template
    if placeholder not in tok.get_vocab():
        tok.add_tokens([AddedToken(placeholder, special=True, normalized=False)], special_tokens=True)
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ValueError("tokenizer has neither a pad nor an eos token; set one in the tokenizer folder")
        tok.pad_token = tok.eos_token  # attention_mask marks padding; labels never read pad positions
    ids = tok.encode(placeholder, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"placeholder {placeholder!r} tokenizes to {len(ids)} ids; it must be exactly one token")
    return tok


def _random_init_config(cfg: LLMConfig, tok: PreTrainedTokenizerFast):
    options: dict[str, Any] = dict(cfg.config)
    if "model_type" not in options:
        raise ValueError("llm.config needs a `model_type` (e.g. llama, qwen2, gemma2)")
    options.setdefault("vocab_size", len(tok))
    options.setdefault("pad_token_id", tok.pad_token_id)
    options.setdefault("bos_token_id", tok.bos_token_id)
    options.setdefault("eos_token_id", tok.eos_token_id)
    return AutoConfig.for_model(options.pop("model_type"), **options)


def fit_embeddings(model: PreTrainedModel, tok: PreTrainedTokenizerFast) -> None:
    """Grow the embedding table (and an untied output head) to cover every tokenizer id."""
    old = model.get_input_embeddings().weight.shape[0]
    if len(tok) <= old:
        return
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    with torch.no_grad():
        tables = [model.get_input_embeddings().weight]
        head = model.get_output_embeddings()
        if head is not None and head.weight.data_ptr() != tables[0].data_ptr():
            tables.append(head.weight)
        for table in tables:
            table[old:] = table[:old].mean(dim=0, keepdim=True)


def load_llm(cfg: LLMConfig, tok: PreTrainedTokenizerFast) -> PreTrainedModel:
    """Causal LM in fp32 from a local folder (never downloads) or random init from `cfg.config`."""
    if cfg.path is not None:
        folder = require_folder(cfg.path, "llm")
        model = AutoModelForCausalLM.from_pretrained(
            str(folder), local_files_only=True, dtype=torch.float32, attn_implementation=cfg.attn_implementation
        )
    else:
        model = AutoModelForCausalLM.from_config(
            _random_init_config(cfg, tok), attn_implementation=cfg.attn_implementation
        )
    fit_embeddings(model, tok)
    return model
