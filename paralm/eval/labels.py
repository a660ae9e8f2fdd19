"""Read one categorical label (emotion or gender) out of a free-text answer, and what a question asks.

Direct paralinguistic (DP) questions have one correct label, so an answer can be scored without a
judge: find the label words it uses, map synonyms to canonical labels, drop negated mentions
("not angry"), and accept the answer's label only when exactly one distinct label remains. An answer
that names no label, or hedges between several ("angry or sad"), yields None, which the scorers count
as its own wrong class "none" instead of dropping it. Never imports torch.

What a question asks (`asks`: emotion, gender, arousal, ...) is recorded on every QA item when it is
made; `infer_asks` reads it from the question text only for items without it (foreign data, shards
built before the field existed), and the scorers count every item that needed it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from paralm.data.schema import QA_ASKS

NONE_LABEL = "none"

EMOTION_SYNONYMS: dict[str, tuple[str, ...]] = {
    "angry": ("angry", "anger", "mad", "furious", "irritated", "annoyed", "enraged", "frustrated"),
    "happy": ("happy", "happiness", "joyful", "joy", "glad", "cheerful", "delighted", "pleased"),
    "sad": ("sad", "sadness", "unhappy", "sorrowful", "sorrow", "depressed", "gloomy", "melancholy"),
    "fearful": ("fearful", "fear", "afraid", "scared", "frightened", "terrified"),
    "surprised": ("surprised", "surprise", "astonished", "astonishment", "amazed", "shocked"),
    "neutral": ("neutral", "calm", "composed"),
    "disgusted": ("disgusted", "disgust", "repulsed", "revolted"),
}

GENDER_SYNONYMS: dict[str, tuple[str, ...]] = {
    "male": ("male", "man", "masculine", "boy", "gentleman"),
    "female": ("female", "woman", "feminine", "girl", "lady"),
}

_NEGATORS = frozenset({"not", "no", "never", "neither", "nor", "without", "hardly"})
_SCOPE_BREAKERS = frozenset({"but", "rather", "instead", "though", "although", "however", "yet"})
_NEGATION_WINDOW = 3  # a negator this many words before a label word cancels it
_CLAUSE_END = re.compile(r"[.,;:!?()\n]")
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class LabelSet:
    """A closed label vocabulary: canonical labels and the words that mean each of them."""

    kind: str
    synonyms: dict[str, tuple[str, ...]]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.synonyms)

    @property
    def word_to_label(self) -> dict[str, str]:
        return {w: label for label, words in self.synonyms.items() for w in words}

    def canonical(self, label: str | None) -> str | None:
        """A gold label (or a synonym of one) in canonical form; None if it is not in the vocabulary."""
        if label is None:
            return None
        return self.word_to_label.get(label.strip().lower())


LABEL_SETS: dict[str, LabelSet] = {
    "emotion": LabelSet("emotion", EMOTION_SYNONYMS),
    "gender": LabelSet("gender", GENDER_SYNONYMS),
}

_SEX_WORD = r"(?:male|female|man|woman|masculine|feminine|boy|girl)"
# "gender", "male or female", "a man or a woman", "a female voice": the article between is optional
_GENDER_QUESTION = re.compile(rf"\b(?:gender|sex)\b|\b{_SEX_WORD}\s+or\s+(?:an?\s+)?{_SEX_WORD}\b|"
                              rf"\b{_SEX_WORD}\s+voice\b", re.I)
_DIMENSION_QUESTIONS: tuple[tuple[str, re.Pattern], ...] = (
    ("arousal", re.compile(r"\b(?:arousal|energetic|energy|activated|excited or calm|calm or excited)\b", re.I)),
    ("valence", re.compile(r"\b(?:valence|positive or negative|negative or positive|pleasant or unpleasant)\b",
                           re.I)),
    ("dominance", re.compile(r"\b(?:dominance|dominant|submissive|in control)\b", re.I)),
)
ASKS_BY_TYPE = {"C": "content", "CP": "context"}  # what C and CP questions ask, whatever their wording


def get_label_set(kind: str) -> LabelSet:
    """Look a label vocabulary up by kind; an unknown kind raises with the valid choices."""
    if kind not in LABEL_SETS:
        raise ValueError(f"unknown label kind {kind!r}; choose one of {sorted(LABEL_SETS)}")
    return LABEL_SETS[kind]


def words(text: str) -> list[str]:
    """Lower-case word tokens, with "n't" split off as "not" ("isn't" -> "is", "not")."""
    text = re.sub(r"n['’]t\b", " not", text.lower())
    return _WORD.findall(text)


def _negated(tokens: list[str], i: int) -> bool:
    """Whether a negator governs tokens[i]: within the window, not cut off by "but", "rather", ..."""
    for tok in reversed(tokens[max(0, i - _NEGATION_WINDOW) : i]):
        if tok in _SCOPE_BREAKERS:
            return False
        if tok in _NEGATORS:
            return True
    return False


def mentioned_labels(text: str, label_set: LabelSet) -> list[str]:
    """Canonical labels named in `text`, in order of first mention, negated mentions left out.

    Negation scope ends at punctuation, so "No, she is angry" still names angry.
    """
    mapping = label_set.word_to_label
    found: list[str] = []
    for clause in _CLAUSE_END.split(text):
        tokens = words(clause)
        for i, tok in enumerate(tokens):
            label = mapping.get(tok)
            if label is not None and not _negated(tokens, i) and label not in found:
                found.append(label)
    return found


def extract_label(text: str, kind: str) -> str | None:
    """The single label an answer commits to, or None (no label, or several distinct ones)."""
    found = mentioned_labels(text or "", get_label_set(kind))
    return found[0] if len(found) == 1 else None


def infer_asks(qtype: str, question: str) -> str:
    """The fallback guess of what a question asks, for items made without `asks` (one of QA_ASKS).

    C questions ask about the content and CP questions about the voice in context; a DP question asks
    about gender, arousal, valence or dominance when its wording says so, else about emotion.
    """
    if qtype in ASKS_BY_TYPE:
        return ASKS_BY_TYPE[qtype]
    text = question or ""
    if _GENDER_QUESTION.search(text):
        return "gender"
    for asks, pattern in _DIMENSION_QUESTIONS:
        if pattern.search(text):
            return asks
    return "emotion"


def check_asks(asks: str) -> str:
    """`asks` when it is one of QA_ASKS; otherwise a ValueError naming the valid values."""
    if asks not in QA_ASKS:
        raise ValueError(f"asks {asks!r} is not one of {', '.join(QA_ASKS)}")
    return asks


def infer_label_kind(question: str) -> str:
    """Whether a DP question asks about gender or (by default) emotion (fallback for rows without asks)."""
    return "gender" if _GENDER_QUESTION.search(question or "") else "emotion"
