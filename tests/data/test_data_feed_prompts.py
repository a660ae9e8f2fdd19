"""Prompt modes: metadata block format and bins, metadata sources, oracle flag, message layout."""

import logging

import pytest
from feedkit import sample_meta

from paralm.data import prompts
from paralm.data.prompts import PromptConfig, affect_bin, build_messages, lookup_metadata, metadata_block

META = sample_meta("k1", 1.0, "train")


def test_block_shows_numbers_with_two_decimals_and_bins():
    block = metadata_block(META, "gold")
    assert block == (
        "Paralinguistic cues: emotion: angry; arousal: 0.72 (high); valence: 0.21 (low); "
        "dominance: 0.50 (mid)"
    )


def test_bin_thresholds_are_configurable():
    assert affect_bin(0.45) == "mid"
    assert affect_bin(0.45, low=0.5, high=0.7) == "low"
    assert "arousal: 0.72 (mid)" in metadata_block(META, "gold", low=0.3, high=0.8)


def test_gender_only_when_asked():
    assert "gender" not in metadata_block(META, "gold")
    assert metadata_block(META, "gold", include_gender=True).endswith("; gender: female")


def test_pred_source_reads_that_annotator_and_missing_one_says_unknown():
    assert "emotion: happy" in metadata_block(META, "pred:ser@oof")
    assert "emotion: sad" in metadata_block(META, "pred:ser")
    assert lookup_metadata(META, "pred:other") is None
    block = metadata_block(META, "pred:other", include_gender=True)
    assert block.count("unknown") == 5


def test_block_never_names_the_annotator():
    assert "ser" not in metadata_block(META, "pred:ser@oof")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"mode": "verbose"}, "unknown prompt mode 'verbose'; valid: plain, explicit"),
        ({"mode": "explicit"}, "explicit prompt mode needs a metadata source"),
        ({"metadata": "silver"}, "valid: none, gold, pred:<annotator>"),
        ({"metadata": "pred:"}, "valid: none, gold, pred:<annotator>"),
        ({"low": 0.7, "high": 0.6}, "low <= high"),
        ({"instruction": "Q: {question}"}, "must contain {audio}"),
    ],
)
def test_bad_prompt_config_names_the_field_and_choices(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PromptConfig(**kwargs)


def test_only_explicit_gold_is_the_oracle():
    assert PromptConfig("explicit", "gold").is_oracle
    assert not PromptConfig("explicit", "pred:ser").is_oracle
    assert not PromptConfig("plain", "gold").is_oracle
    assert PromptConfig("plain", "gold").describe() == {"mode": "plain", "metadata": "none", "oracle": False}


def test_oracle_warning_is_logged_once(monkeypatch, caplog):
    monkeypatch.setattr(prompts, "_oracle_warned", False)
    with caplog.at_level(logging.WARNING, logger="paralm.data.prompts"):
        prompts.warn_if_oracle(PromptConfig("explicit", "pred:ser"))
        assert not caplog.records
        for _ in range(3):
            prompts.warn_if_oracle(PromptConfig("explicit", "gold"))
    assert len(caplog.records) == 1 and "ORACLE" in caplog.records[0].getMessage()


def test_plain_messages_hold_question_and_one_placeholder_only():
    (msg,) = build_messages("  How do they feel? ", META, PromptConfig(), "<A>")
    assert msg == {
        "role": "user",
        "content": "Instruction: How do they feel?\n"
        "Follow the text instruction based on the following audio: <A>",
    }


def test_explicit_block_goes_before_the_instruction_and_system_is_optional():
    msgs = build_messages("Why?", META, PromptConfig("explicit", "gold", system="Be kind."), "<A>")
    assert msgs[0] == {"role": "system", "content": "Be kind."}
    content = msgs[1]["content"]
    assert content.startswith("Paralinguistic cues: emotion: angry;")
    assert content.index("Paralinguistic cues") < content.index("Instruction: Why?")
    assert content.count("<A>") == 1


def test_plain_mode_ignores_a_configured_metadata_source():
    (msg,) = build_messages("Why?", META, PromptConfig("plain", "gold"), "<A>")
    assert "Paralinguistic" not in msg["content"]
