"""Tokenizer safety without the real model: a folder whose tokenizer does not fit its embedding table."""

import pytest
from transformers import LlamaConfig, LlamaForCausalLM

from paralm.model.builders import tiny_tokenizer
from paralm.model.config import LLMConfig
from paralm.model.llm import TokenizerMismatch, build_tokenizer


@pytest.fixture
def mismatched_folder(tmp_path):
    """A tiny Llama with 5,000 embedding rows saved beside the 102-token builtin tokenizer."""
    cfg = LlamaConfig(vocab_size=5000, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    return tmp_path


def test_a_tokenizer_that_does_not_fit_the_embedding_table_is_refused_with_both_sizes(mismatched_folder):
    with pytest.raises(TokenizerMismatch, match=r"has 102 tokens but the model's embedding table has 5000 rows"):
        build_tokenizer(LLMConfig(path=str(mismatched_folder)), "<|audio|>")


def test_allow_foreign_tokenizer_accepts_the_mismatch_when_the_config_says_so(mismatched_folder):
    tok = build_tokenizer(LLMConfig(path=str(mismatched_folder), allow_foreign_tokenizer=True), "<|audio|>")
    assert len(tok) == 103  # the placeholder appended after 102 ids


def test_naming_the_llm_folder_itself_as_tokenizer_is_not_foreign(tmp_path):
    cfg = LlamaConfig(vocab_size=102, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    tok = build_tokenizer(LLMConfig(path=str(tmp_path), tokenizer=str(tmp_path / ".")), "<|audio|>")
    assert tok.convert_tokens_to_ids("<|audio|>") == 102
