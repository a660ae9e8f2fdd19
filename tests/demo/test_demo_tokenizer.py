"""The demo LLM's word-level tokenizer: labels are single tokens, text round-trips, building is deterministic."""

from pathlib import Path

from transformers import AutoTokenizer

from paralm.data.schema import EMOTIONS
from paralm.model.builders import word_tokenizer

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["The speaker sounds angry.", "The speaker sounds happy.", "What emotion does the speaker express?",
         "The train leaves the station at nine in the morning."] * 3


def test_frequent_words_become_single_tokens_and_text_round_trips():
    tok = word_tokenizer(TEXTS, vocab_size=512)
    ids = tok("The speaker sounds angry.")["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["▁The", "▁speaker", "▁sounds", "▁angry", "."]
    assert tok.decode(ids) == "The speaker sounds angry."
    assert tok.decode(tok("Unseen words, still fine!")["input_ids"]) == "Unseen words, still fine!"


def test_building_twice_gives_the_same_vocabulary():
    assert word_tokenizer(TEXTS, 512).get_vocab() == word_tokenizer(list(reversed(TEXTS)), 512).get_vocab()


def test_committed_demo_tokenizer_has_one_token_per_emotion_and_a_chat_template():
    tok = AutoTokenizer.from_pretrained(ROOT / "data" / "demo" / "tokenizer")
    for emotion in EMOTIONS:
        if emotion != "disgusted":  # not rendered in the demo corpus
            assert len(tok(emotion, add_special_tokens=False)["input_ids"]) == 1, emotion
    assert tok.chat_template and tok.eos_token == "</s>"
