"""Average the probabilities of several categorical annotators already written to `labels.pred`.

The ensemble reads the members' predictions from the sample's metadata, so members listed earlier
in the same `annotate` run (or written by an earlier run) are combined without re-running models.
Probabilities are averaged over the union of labels (a label a member does not list counts as 0),
weighted if `weights` is given; `arousal` / `valence` / `dominance` are averaged when members have
them. A sample where some members are missing is averaged over those present, listed in `members`.
"""

from __future__ import annotations

from paralm.creation.annotators.base import AnnotatorInput, register_annotator
from paralm.data.schema import DIMENSIONS


def _average(dicts: list[dict], weights: list[float]) -> dict[str, float]:
    total = sum(weights)
    out: dict[str, float] = {}
    for d, w in zip(dicts, weights, strict=True):
        for name, p in d.items():
            out[name] = out.get(name, 0.0) + w * float(p) / total
    return out


@register_annotator("ensemble")
class EnsembleAnnotator:
    """Weighted mean of member probabilities; emotion = the label with the highest mean."""

    needs_audio = False

    def __init__(self, id: str, *, device: str = "cpu", members: list[str] | None = None,
                 weights: list[str] | None = None) -> None:
        """
        Args:
            id: prediction key under labels.pred.
            device: unused (no model).
            members: annotator ids to combine, joined with '+' in a spec (members=e2v+e2v_large).
            weights: one weight per member, '+'-joined; default equal weights.
        """
        members = list(members or [])
        if len(members) < 2:
            raise ValueError(f"annotator {id!r} (ensemble) needs members=a+b with at least two annotator ids")
        parsed = [float(w) for w in weights] if weights else [1.0] * len(members)
        if len(parsed) != len(members) or min(parsed) <= 0:
            raise ValueError(f"annotator {id!r} (ensemble): weights must be {len(members)} positive numbers")
        self.id = id
        self.members = members
        self.weights = dict(zip(members, parsed, strict=True))
        self.version = "ensemble(" + "+".join(f"{m}*{w:g}" for m, w in self.weights.items()) + ")"

    def describe(self) -> dict:
        return {"kind": self.kind, "members": self.members, "weights": self.weights, "version": self.version}

    def combine(self, preds: dict[str, dict]) -> dict:
        """{member id: member prediction} -> the ensemble prediction ({} when no member has probs)."""
        used = [m for m in self.members if isinstance(preds.get(m), dict) and preds[m].get("probs")]
        if not used:
            return {}
        w = [self.weights[m] for m in used]
        probs = _average([preds[m]["probs"] for m in used], w)
        out: dict = {"emotion": max(probs, key=probs.get), "probs": probs, "members": used,
                     "version": self.version}
        other = _average([preds[m].get("other_probs", {}) for m in used], w)
        if other:
            out["other_probs"] = other
        for dim in DIMENSIONS:
            have = [(preds[m][dim], self.weights[m]) for m in used if preds[m].get(dim) is not None]
            if have:
                out[dim] = sum(v * wt for v, wt in have) / sum(wt for _, wt in have)
        return out

    def annotate(self, batch: list[AnnotatorInput]) -> list[dict]:
        return [self.combine(b.meta.get("labels", {}).get("pred", {})) for b in batch]
