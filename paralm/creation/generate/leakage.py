"""Leakage check against evaluation sets: by audio key, and by question+answer text similarity.

Why both: an evaluation clip that slipped into the training corpus (same key, or a window cut from it)
teaches the model its answer directly; a generated pair that copies an evaluation pair's wording leaks
the reference even on other audio. Keys are compared with the clip's own key and the keys it was cut from
(`window.parent`, `source_key`), on both sides. Text similarity is character n-gram Jaccard; an inverted
index from n-grams to evaluation pairs keeps the check cheap for large evaluation sets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from paralm.creation.generate.filters import char_ngrams, normalise
from paralm.creation.generate.inputs import GenInput


def _related_keys(meta: dict) -> list[str]:
    window = meta.get("window") or {}
    return [str(k) for k in (meta.get("key"), window.get("parent"), meta.get("source_key")) if k]


class EvalSets:
    """Keys and QA texts of the evaluation sets a generated corpus must not overlap.

    Args:
        keys: audio keys of evaluation clips (and the keys they were cut from).
        qa_texts: "question answer" texts of evaluation QA pairs.
        threshold: character n-gram Jaccard at which a generated pair counts as a copy.
        ngram: character n-gram length.
    """

    def __init__(self, keys: Iterable[str] = (), qa_texts: Iterable[str] = (), threshold: float = 0.8,
                 ngram: int = 3) -> None:
        self.keys = set(keys)
        self.threshold, self.ngram = threshold, ngram
        self._norm: set[str] = set()
        self._grams: list[frozenset[str]] = []
        self._postings: dict[str, list[int]] = {}
        for text in qa_texts:
            self._add(text)

    def _add(self, text: str) -> None:
        self._norm.add(normalise(text))
        grams = char_ngrams(text, self.ngram)
        for g in grams:
            self._postings.setdefault(g, []).append(len(self._grams))
        self._grams.append(grams)

    def __len__(self) -> int:
        return len(self._grams)

    @classmethod
    def from_metas(cls, metas: Iterable[dict], threshold: float = 0.8, ngram: int = 3) -> EvalSets:
        keys, texts = [], []
        for meta in metas:
            keys += _related_keys(meta)
            texts += [f"{p['question']} {p['answer']}" for p in meta.get("qa") or []]
        return cls(keys, texts, threshold, ngram)

    @classmethod
    def from_dirs(cls, dirs: Iterable[str | Path], threshold: float = 0.8, ngram: int = 3,
                  splits: Iterable[str] | None = None) -> EvalSets:
        """Load every sample's key and QA pairs from evaluation shard directories (with their index).

        With `splits`, only samples of those splits count (a corpus folder holding train, val and test)."""
        from paralm.data.index import ShardIndex
        from paralm.data.reader import iter_samples

        keep = None if splits is None else set(splits)
        metas = [meta for d in dirs for _, meta, _ in iter_samples(ShardIndex.load(d))
                 if keep is None or meta.get("split") in keep]
        return cls.from_metas(metas, threshold, ngram)

    def leaks_key(self, inp: GenInput) -> bool:
        """True when the clip, or a clip it was cut from, is an evaluation clip."""
        return bool(self.keys.intersection((inp.key, *inp.parents)))

    def leaks_text(self, text: str) -> bool:
        """True when `text` (question + answer) copies an evaluation pair exactly or nearly."""
        if normalise(text) in self._norm:
            return True
        grams = char_ngrams(text, self.ngram)
        if not grams or not self._grams:
            return False
        shared = Counter(i for g in grams for i in self._postings.get(g, ()))
        for i, n in shared.items():
            if n / (len(grams) + len(self._grams[i]) - n) >= self.threshold:
                return True
        return False
