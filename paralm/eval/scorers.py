"""Deterministic scorers: label accuracy / macro-F1 on DP questions, token F1 on open answers.

They need no judge, so they run on every evaluation and anchor the judge: `judge-validate`
correlates judge scores with the label accuracy computed here.

What a DP row asks is the row's `label_kind`, else its recorded `asks`, else (rows made without the
field) a guess from the question text (`infer_asks`), counted in `dp_asks.inferred` so a report can say
how many items fell back. Only rows asking about emotion or gender are label-scored; rows asking about
arousal, valence or dominance have no categorical gold and are counted in `dp_no_target`.

Label scoring: the gold label of a DP row is `row.label` when the writer knew it, else the label the
reference names, else the row's gold `emotion` / `gender`; rows with no gold label at all are counted
as `no_target` and left out. The predicted label is read from the answer (paralm.eval.labels); an
answer with no single label becomes class "none", which is never a gold class, so it is always wrong
and is never dropped. Macro-F1 averages per-class F1 (torchmetrics) over the classes present in the
gold labels: "none" lowers it through the recall of the true class, not as an extra zero-F1 class.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from paralm.eval.labels import LABEL_SETS, NONE_LABEL, extract_label, get_label_set, infer_asks
from paralm.formats.predictions import QUESTION_TYPES, PredictionRow

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation, no articles, single spaces."""
    text = (text or "").lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, reference: str) -> float:
    """Bag-of-tokens F1 between normalised prediction and reference (both empty -> 1.0)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    overlap = sum((Counter(pred) & Counter(ref)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised strings are equal."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


@dataclass(frozen=True)
class LabelOutcome:
    """One DP row scored by label: what it is about, the gold label, the answer's label."""

    item_id: str
    kind: str
    target: str
    predicted: str
    correct: bool
    asks_inferred: bool = False


def row_asks(row: PredictionRow) -> tuple[str, bool]:
    """(what the row's question asks, whether that had to be inferred from the question text)."""
    recorded = row.label_kind or row.asks
    if recorded is not None:
        return recorded, False
    return infer_asks(row.type, row.question), True


def label_target(row: PredictionRow) -> tuple[str, str | None]:
    """(what the row asks, gold label or None) for a DP row; see the module docstring for the order tried.

    The gold label is None when the row asks about something without a categorical label set.
    """
    kind, _ = row_asks(row)
    if kind not in LABEL_SETS:
        return kind, None
    label_set = get_label_set(kind)
    if row.label is not None:
        target = label_set.canonical(row.label)
        if target is None:
            raise ValueError(f"label {row.label!r} of {row.key!r} is not a valid {kind} label; valid: {label_set.labels}")
        return kind, target
    target = extract_label(row.reference, kind)
    if target is None:
        target = label_set.canonical(row.emotion if kind == "emotion" else row.gender)
    return kind, target


def label_outcomes(rows: Iterable[PredictionRow]) -> list[LabelOutcome]:
    """Label outcomes of the DP rows that have a gold label, in input order."""
    out = []
    for row in rows:
        if row.type != "DP":
            continue
        kind, target = label_target(row)
        if target is None:
            continue
        predicted = extract_label(row.answer, kind) or NONE_LABEL
        out.append(LabelOutcome(row.item_id, kind, target, predicted, predicted == target, row_asks(row)[1]))
    return out


def asks_counts(rows: Iterable[PredictionRow]) -> dict:
    """How the DP rows' targets were known: `recorded` (asks or label_kind on the row), `inferred` (the
    question-text fallback), and how many rows ask about each thing."""
    recorded = inferred = 0
    by_asks: Counter = Counter()
    for row in rows:
        if row.type != "DP":
            continue
        asks, guessed = row_asks(row)
        inferred += guessed
        recorded += not guessed
        by_asks[asks] += 1
    return {"recorded": recorded, "inferred": inferred, "by_asks": dict(sorted(by_asks.items()))}


def classification_metrics(outcomes: list[LabelOutcome], kind: str) -> dict:
    """Accuracy, macro-F1 over gold classes, per-class F1 and the "none" rate for one label kind."""
    labels = (*get_label_set(kind).labels, NONE_LABEL)
    index = {label: i for i, label in enumerate(labels)}
    chosen = [o for o in outcomes if o.kind == kind]
    if not chosen:
        return {"n": 0, "accuracy": None, "macro_f1": None, "none_rate": None, "per_class_f1": {}}
    preds = torch.tensor([index[o.predicted] for o in chosen])
    target = torch.tensor([index[o.target] for o in chosen])
    accuracy = MulticlassAccuracy(num_classes=len(labels), average="micro")(preds, target)
    per_class = MulticlassF1Score(num_classes=len(labels), average="none")(preds, target)
    gold = sorted({index[o.target] for o in chosen})
    return {
        "n": len(chosen),
        "accuracy": float(accuracy),
        "macro_f1": float(per_class[gold].mean()),
        "none_rate": sum(o.predicted == NONE_LABEL for o in chosen) / len(chosen),
        "per_class_f1": {labels[i]: float(per_class[i]) for i in gold},
    }


def _text_scores(rows: list[PredictionRow]) -> dict:
    if not rows:
        return {"n": 0, "token_f1": None, "exact_match": None}
    f1 = [token_f1(r.answer, r.reference) for r in rows]
    em = [exact_match(r.answer, r.reference) for r in rows]
    return {"n": len(rows), "token_f1": sum(f1) / len(f1), "exact_match": sum(em) / len(em)}


def score_predictions(rows: Iterable[PredictionRow]) -> dict:
    """Summary of the deterministic scores: token F1 per question type, label metrics on DP rows."""
    rows = list(rows)
    outcomes = label_outcomes(rows)
    dp_rows = [r for r in rows if r.type == "DP"]
    return {
        "n": len(rows),
        "by_type": {t: _text_scores([r for r in rows if r.type == t]) for t in QUESTION_TYPES},
        "labels": {kind: classification_metrics(outcomes, kind) for kind in LABEL_SETS},
        "dp_no_target": len(dp_rows) - len(outcomes),
        "dp_asks": asks_counts(dp_rows),
    }
