"""Question/answer pairs of the demo corpus's general source (the usual Speech-LLM instruction mix).

Training clips get transcription, two content questions and two label questions (emotion, gender) with
short answers, so the baseline is a Speech-LLM that has seen emotion questions. Validation and test clips
are asked with a held-out set of templates (different phrasing, words that occur in the training text)
and additionally get contextual paralinguistic (CP) questions whose answers depend on both the words and
the voice: does the tone fit the news, and how should one answer the speaker. Every pair records what
it asks (`asks`); the committed shards, built before that field existed, got it from record_asks.py.
"""

from __future__ import annotations

import random

from presets import VALENCE_SIGN
from sentences import Sentence

# (template id, text) per question kind; a clip draws one text per kind with its own seeded generator.
TRAIN_TEMPLATES: dict[str, tuple[str, ...]] = {
    "transcribe": (
        "Transcribe the audio.",
        "Write down the exact words of the speaker.",
        "What does the speaker say in the audio?",
    ),
    "news": ("Are the words good news, bad news, or neither?",),
    "emotion": (
        "What emotion does the speaker express?",
        "Which emotion do you hear in the voice?",
        "How does the speaker sound? Answer with one word.",
    ),
    "gender": ("Is the speaker male or female?", "What is the gender of the speaker?"),
}

HELD_OUT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "transcribe": ("Write down what you hear in the audio.", "What are the exact words in the audio?"),
    "news": ("Is what the speaker says good or bad news?",),
    "emotion": ("Answer with one word: which emotion does the voice express?", "In one word, how does the speaker sound?"),
    "gender": ("Do you hear a male or a female voice?",),
    "tone": ("Is the emotion in the voice the one you hear in the words?",),
    "reply": ("How should you answer the speaker?",),
}

QUESTION_TYPE = {"transcribe": "C", "content": "C", "news": "C", "emotion": "DP", "gender": "DP", "tone": "CP", "reply": "CP"}
# what each kind of question asks (paralm.data.schema.QA_ASKS), recorded on every pair so scorers never guess
ASKS = {"transcribe": "content", "content": "content", "news": "content", "emotion": "emotion", "gender": "gender",
        "tone": "context", "reply": "context"}
_SIGN = {"neutral": 0, "positive": 1, "negative": -1}
_NEWS = {1: "good news", -1: "bad news"}

_REPLY = {
    "neutral": "Thank you for telling me.",
    "happy": "You sound happy, that is great to hear!",
    "sad": "You sound sad. I am sorry, do you want to talk about it?",
    "angry": "You sound angry. I understand, let us sort this out together.",
    "fearful": "You sound scared. It will be all right, I am here to help.",
    "surprised": "You sound surprised! Tell me more about it.",
}


def news_answer(sentence: Sentence) -> str:
    return {1: "Good news.", -1: "Bad news.", 0: "Neither."}[_SIGN[sentence.sentiment]]


def tone_answer(sentence: Sentence, emotion: str) -> str:
    """Whether the tone fits the words: signs of the words' sentiment and the emotion's valence."""
    words, voice = _SIGN[sentence.sentiment], VALENCE_SIGN[emotion]
    if words == 0:
        if emotion == "neutral":
            return "Yes. The words are plain information and the voice sounds neutral too."
        return f"No. The words are plain information, but the voice sounds {emotion}."
    news = _NEWS[words]
    if voice == words:
        return f"Yes. The words are {news} and the voice sounds {emotion}."
    return f"No. The words are {news}, but the voice sounds {emotion}."


def reply_answer(sentence: Sentence, emotion: str) -> str:
    """An empathetic answer; when tone and news conflict it names the conflict."""
    words, voice = _SIGN[sentence.sentiment], VALENCE_SIGN[emotion]
    if words != 0 and voice == -words:
        return f"That is {_NEWS[words]}, but you sound {emotion}. How do you really feel about it?"
    return _REPLY[emotion]


def _pair(kind: str, question: str, answer: str, template: str) -> dict:
    return {
        "question": question,
        "answer": answer,
        "type": QUESTION_TYPE[kind],
        "origin": "template",
        "asks": ASKS[kind],
        "generator": {"name": "demo-build", "kind": kind, "template": template},
    }


def build_qa(sentence: Sentence, emotion: str, gender: str, split: str, rng: random.Random) -> list[dict]:
    """The clip's qa list: training phrasing for "train", held-out phrasing (plus CP) otherwise."""
    held_out = split != "train"
    templates = HELD_OUT_TEMPLATES if held_out else TRAIN_TEMPLATES
    prefix = "held_out" if held_out else "train"
    answers = {
        "transcribe": sentence.text,
        "news": news_answer(sentence),
        "emotion": emotion,
        "gender": gender,
        "tone": tone_answer(sentence, emotion),
        "reply": reply_answer(sentence, emotion),
    }
    qa = []
    for kind in ("transcribe", "content", "news", "emotion", "gender", "tone", "reply"):
        if kind == "content":
            qa.append(_pair(kind, sentence.question, sentence.answer, f"{prefix}.content.{sentence.id}"))
            continue
        if kind not in templates:
            continue
        i = rng.randrange(len(templates[kind]))
        qa.append(_pair(kind, templates[kind][i], answers[kind], f"{prefix}.{kind}.{i}"))
    return qa
