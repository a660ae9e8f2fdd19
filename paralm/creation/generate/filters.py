"""Filters for generated QA pairs; every dropped pair is counted by reason.

Checks, in the order they run on each pair of a clip:
  assumes_transcript  the question or answer refers to a transcript, text, metadata, labels or scores the
                      listener cannot see ("in the transcript", "the text says", "according to the labels").
  answer_too_long     answers should be short; longer ones are usually rambling or copied prompt text.
  leak_text           question+answer is a copy or near copy of an evaluation QA pair (character n-gram
                      Jaccard >= leak_threshold, or the same normalised text).
  exact_duplicate     same normalised question+answer as a pair already kept for this clip.
  near_duplicate      character n-gram Jaccard of question+answer >= near_duplicate_threshold with a kept pair.
  paraphrase          the question repeats a kept question of this clip in other words (Jaccard of content
                      word stems >= paraphrase_threshold).
Duplicates are judged within a clip: the same question about two different recordings is two different
training examples. Leakage by audio key is checked before generation (see `EvalSets.leaks_key`).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

FILTER_REASONS = ("assumes_transcript", "answer_too_long", "leak_text", "exact_duplicate", "near_duplicate",
                  "paraphrase")

_HIDDEN = r"(transcripts?|transcriptions?|the text|written text|metadata|labels?|annotations?|captions?)"
ASSUMES_TRANSCRIPT = [
    re.compile(rf"\b(in|from|according to|based on|per|given|using|see) (the |this |these )?(provided |given )?{_HIDDEN}", re.I),
    re.compile(rf"\b{_HIDDEN} (says?|said|shows?|states?|mentions?|indicates?|reads?|lists?|provided|above)\b", re.I),
    re.compile(r"\b(provided|given|above|following|attached) (transcripts?|text|metadata|labels?|information|annotations?)\b", re.I),
    re.compile(r"\b(emotion|arousal|valence|dominance|confidence) (label|score|value|rating|level of [0-9.]+)s?\b", re.I),
    re.compile(r"\b(timestamps?|time ?stamps?)\b", re.I),
    re.compile(r"\b(arousal|valence|dominance)\b[^.]{0,24}?\b[01]?\.\d+", re.I),  # quotes an annotator's score
]
STOPWORDS = frozenset(
    "a an the is are was were be been being do does did doing of to in on at by for with about as from this that "
    "these those it its it's they them their there here what which who whom how why when where whether or and but "
    "if so than then can could would should will shall may might must you your i me my we our he she his her "
    "speaker speakers clip audio recording sound sounds seem seems".split())


@dataclass
class FilterConfig:
    """Thresholds of the QA pair filters.

    Args:
        paraphrase_threshold: questions of one clip whose content-word-stem Jaccard reaches this are paraphrases.
        near_duplicate_threshold: question+answer character n-gram Jaccard at which two pairs are near duplicates.
        leak_threshold: question+answer character n-gram Jaccard with an evaluation pair at which a pair leaks.
        ngram: character n-gram length for the Jaccard similarities.
        max_answer_words: answers longer than this many words are dropped.
    """

    paraphrase_threshold: float = 0.75
    near_duplicate_threshold: float = 0.85
    leak_threshold: float = 0.8
    ngram: int = 3
    max_answer_words: int = 60


def normalise(text: str) -> str:
    """Lower case, accents and punctuation removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", text).split())


def char_ngrams(text: str, n: int = 3) -> frozenset[str]:
    """Character n-grams of the normalised text (the whole text when shorter than n)."""
    t = normalise(text)
    return frozenset(t[i:i + n] for i in range(max(1, len(t) - n + 1))) if t else frozenset()


def jaccard(a: frozenset, b: frozenset) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _stem(word: str) -> str:
    """A crude suffix stripper: enough to match "feel"/"feeling" and "express"/"expressing"."""
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith(("ed", "ly")):
        return word[:-2]
    if word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def content_stems(question: str) -> frozenset[str]:
    """Stems of the question's content words (stop words and clip/speaker words left out)."""
    return frozenset(_stem(w) for w in normalise(question).split() if w not in STOPWORDS)


def assumes_transcript(pair: dict) -> bool:
    text = f"{pair['question']} || {pair['answer']}"
    return any(p.search(text) for p in ASSUMES_TRANSCRIPT)


def qa_text(pair: dict) -> str:
    return f"{pair['question']} {pair['answer']}"


@dataclass
class FilterResult:
    """Pairs kept for one clip and the counts of those dropped, by reason."""

    kept: list[dict] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)


def filter_pairs(pairs: list[dict], cfg: FilterConfig, leaks_text=None) -> FilterResult:
    """Apply the filters (module docstring order) to one clip's pairs.

    Args:
        pairs: {type, question, answer} dicts in generation order.
        cfg: thresholds.
        leaks_text: optional `text -> bool` that says whether question+answer copies an evaluation pair.
    """
    res = FilterResult()
    seen_norm: set[str] = set()
    kept_grams: list[frozenset] = []
    kept_stems: list[frozenset] = []
    for pair in pairs:
        text = qa_text(pair)
        grams, stems = char_ngrams(text, cfg.ngram), content_stems(pair["question"])
        if assumes_transcript(pair):
            reason = "assumes_transcript"
        elif len(pair["answer"].split()) > cfg.max_answer_words:
            reason = "answer_too_long"
        elif leaks_text is not None and leaks_text(text):
            reason = "leak_text"
        elif normalise(text) in seen_norm:
            reason = "exact_duplicate"
        elif any(jaccard(grams, g) >= cfg.near_duplicate_threshold for g in kept_grams):
            reason = "near_duplicate"
        elif stems and any(jaccard(stems, s) >= cfg.paraphrase_threshold for s in kept_stems):
            reason = "paraphrase"
        else:
            res.kept.append(pair)
            seen_norm.add(normalise(text))
            kept_grams.append(grams)
            kept_stems.append(stems)
            continue
        res.dropped[reason] += 1
    return res
