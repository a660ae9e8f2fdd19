"""Loading the LLM and its tokenizer from local folders (or building them in code for tests).

`build_tokenizer` reads only tokenizer files, so the CLI can hand the data layer a tokenizer and the
placeholder id before any weights are loaded. `load_llm` then sizes the embedding table to that
tokenizer: the placeholder row (and any other added row) is initialised to the mean of the existing
rows, deterministically, so a model rebuilt from the same folder has the same logits.

A tokenizer that is not the LLM's own is refused (`TokenizerMismatch`, exit 2) unless the config says
`allow_foreign_tokenizer: true`: a forgotten `tokenizer:` line in an overlay would otherwise feed a real
model ids it reads as other words. `gguf_file` loads both from a GGUF file; `system_line` keeps,
replaces or removes the chat template's default system line.
"""

from __future__ import annotations

from pathlib import Path
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

from paralm.fault.exits import UserError
from paralm.model import gguf
from paralm.model.builders import BUILTIN_TOKENIZERS
from paralm.model.config import LLMConfig
from paralm.model.system_line import apply_system_line
from paralm.model.weights import require_folder

BUILTIN_PREFIX = "builtin:"
# Embedding tables may be padded past the tokenizer (Qwen2: 290 rows) but never by more than this.
VOCAB_PADDING_SLACK = 1024


class TokenizerMismatch(UserError):
    """The tokenizer is not the LLM's own: the model would read its ids as other words (exit 2)."""


def _same_folder(a: str, b: str) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def model_vocab_size(cfg: LLMConfig) -> int | None:
    """Rows of the LLM's embedding table from its config.json (None for GGUF or random-init models)."""
    if cfg.path is None or cfg.gguf_file is not None:
        return None
    folder = require_folder(cfg.path, "llm")
    config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    return int(config.get_text_config().vocab_size)


def check_tokenizer(cfg: LLMConfig, tok: PreTrainedTokenizerFast) -> None:
    """Refuse a tokenizer that is not the LLM's own, unless `llm.allow_foreign_tokenizer` says so.

    Foreign = `llm.tokenizer` names another folder or a builtin while the weights come from `llm.path`,
    or the vocabulary does not fit the embedding table (more ids than rows, or far fewer).
    """
    if cfg.path is None or cfg.allow_foreign_tokenizer:
        return
    fix = "or set llm.allow_foreign_tokenizer: true if that is really meant"
    if cfg.tokenizer is not None and not _same_folder(cfg.tokenizer, cfg.path):
        raise TokenizerMismatch(
            f"llm.tokenizer={cfg.tokenizer!r} is not the tokenizer of llm.path={cfg.path!r}: the model would read "
            f"its ids as other words; set llm.tokenizer: null to use the LLM's own tokenizer, {fix}")
    rows = model_vocab_size(cfg)
    if rows is not None and not len(tok) <= rows <= len(tok) + VOCAB_PADDING_SLACK:
        raise TokenizerMismatch(
            f"the tokenizer of {cfg.path} has {len(tok)} tokens but the model's embedding table has {rows} rows; "
            f"they must belong together, {fix}")


def _base_tokenizer(cfg: LLMConfig) -> PreTrainedTokenizerFast:
    if cfg.gguf_file is not None and cfg.tokenizer is None:
        return gguf.load_gguf_tokenizer(require_folder(cfg.path, "llm"), cfg.gguf_file)
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
    check_tokenizer(cfg, tok)
    if cfg.chat_template is not None:
        tok.chat_template = cfg.chat_template
    apply_system_line(tok, cfg.system_line)
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
    if cfg.gguf_file is not None:
        model = gguf.load_gguf_model(require_folder(cfg.path, "llm"), cfg.gguf_file, cfg.attn_implementation)
    elif cfg.path is not None:
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
