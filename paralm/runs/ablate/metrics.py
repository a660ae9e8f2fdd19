"""The ablation's metrics, per item, fixed before any result is read (definitions in `METRICS`).

Per item so that the report can bootstrap over items and seeds, and so that the report's means are
plain means of what each (row, seed) result file holds:
  dp_acc     DP rows about emotion with a gold label: 1 if the single emotion the answer names is the
             gold one (scorers' label extraction; no label or several labels count as wrong).
  cp_mention CP rows of clips with a gold emotion: 1 if the answer names exactly that emotion.
  c_f1       C rows: token F1 against the reference.
Subsets: `all` test items, and `neutral` = items whose transcript is emotionally neutral (the model
must listen: the words give nothing away), where the headline is measured.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from paralm.eval.labels import extract_label, get_label_set
from paralm.eval.scorers import label_outcomes, token_f1
from paralm.formats.predictions import PredictionRow

SUBSETS = ("all", "neutral")


def _dp_acc(rows: list[PredictionRow]) -> dict[str, float]:
    return {o.item_id: float(o.correct) for o in label_outcomes(rows) if o.kind == "emotion"}


def _cp_mention(rows: list[PredictionRow]) -> dict[str, float]:
    labels = get_label_set("emotion")
    out = {}
    for row in rows:
        gold = labels.canonical(row.emotion) if row.type == "CP" and row.emotion else None
        if gold is not None:
            out[row.item_id] = float(extract_label(row.answer, "emotion") == gold)
    return out


def _c_f1(rows: list[PredictionRow]) -> dict[str, float]:
    return {r.item_id: token_f1(r.answer, r.reference) for r in rows if r.type == "C"}


METRIC_FUNCS = {"dp_acc": _dp_acc, "cp_mention": _cp_mention, "c_f1": _c_f1}


def in_subset(row: PredictionRow, subset: str) -> bool:
    """Whether a row belongs to a subset (see `SUBSETS`)."""
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; valid: {', '.join(SUBSETS)}")
    return subset == "all" or row.neutral_text is True


def item_values(rows: Iterable[PredictionRow], metric: str, subset: str = "all") -> dict[str, float]:
    """item_id -> value of one metric over the rows of one subset."""
    if metric not in METRIC_FUNCS:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRIC_FUNCS)}")
    return METRIC_FUNCS[metric]([r for r in rows if in_subset(r, subset)])


def mean_scores(rows: list[PredictionRow]) -> dict[str, dict[str, dict]]:
    """subset -> metric -> {mean, n} (mean None when the subset has no such item)."""
    out: dict[str, dict[str, dict]] = {}
    for subset in SUBSETS:
        out[subset] = {}
        for metric in METRIC_FUNCS:
            values = list(item_values(rows, metric, subset).values())
            out[subset][metric] = {"mean": sum(values) / len(values) if values else None, "n": len(values)}
    return out


# ---- reference levels: what a row would score by luck, computed with the same metric functions ----------
GOLD_FIELDS = ("reference", "emotion", "gender", "label", "label_kind", "asks")


def floor_rows(rows: Iterable[PredictionRow]) -> list[PredictionRow]:
    """Each answer paired with another item's gold (reference and labels) of the same question type that
    asks the same thing (`asks`; items without it form one group per type).

    Why: the empirical floor. A C answer that shares "of the" with another item's reference gets token
    F1 > 0 without transcribing anything; scoring every answer against someone else's reference (a cyclic
    shift over items sorted by id, so no item keeps its own) measures that level for the metric as used.
    The donor asks what the item asks: a gender answer given an emotion question's gold would be scored
    as an emotion answer (0), which is not a floor of anything."""
    by_type: dict[tuple, list[PredictionRow]] = {}
    for row in rows:
        by_type.setdefault((row.type, row.asks), []).append(row)
    out = []
    for group in by_type.values():
        group = sorted(group, key=lambda r: r.item_id)
        for i, row in enumerate(group):
            donor = group[(i + 1) % len(group)]
            out.append(replace(row, **{f: getattr(donor, f) for f in GOLD_FIELDS if hasattr(donor, f)}))
    return out


def copy_cue_rows(rows: Iterable[PredictionRow]) -> list[PredictionRow]:
    """Permuted-metadata rows answered with the emotion their metadata block showed (`extra.cue_emotion`).

    Why: the chance level of the permuted-metadata control. A model that copies the block's emotion
    scores exactly this; it is the share of items whose borrowed cue happens to equal their gold label."""
    return [replace(r, answer=f"The speaker sounds {r.extra.get('cue_emotion') or 'unknown'}.") for r in rows]


# reference levels: condition -> (condition whose rows they re-pair, how); in scores.json and the report
DERIVED = {"floor": ("normal", floor_rows), "chance": ("permuted", copy_cue_rows)}
