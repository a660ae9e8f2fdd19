"""Categorical emotion from a transformers audio-classification model in a local folder.

The model's label names are mapped onto `EMOTIONS` (see labels.py). Output per clip:
`emotion` (the winning label if it maps, else absent), `label` (the raw winning label), `probs`
({emotion: p} over mapped labels), `other_probs` ({model label: p} for labels that don't map), `version`.
"""

from __future__ import annotations

from paralm.creation.annotators.base import AnnotatorInput, folder_version, register_annotator
from paralm.creation.annotators.hf_audio import HFAudioClassifier
from paralm.creation.annotators.labels import split_probs, top_label


def classify(clf: HFAudioClassifier, batch: list[AnnotatorInput], field: str, version: str) -> list[dict]:
    """Run `clf` and express each row of probabilities in the project's `field` vocabulary."""
    preds = []
    for row in clf.probs(batch):
        mapped, other = split_probs(clf.id2label, row.tolist(), field)
        winner, raw = top_label(mapped, other)
        pred: dict = {"label": raw, "version": version}
        if winner is not None:
            pred[field] = winner
        pred["probs" if field == "emotion" else f"{field}_probs"] = mapped
        if other:
            pred["other_probs" if field == "emotion" else f"{field}_other_probs"] = other
        preds.append(pred)
    return preds


@register_annotator("hf_categorical")
class HFCategoricalAnnotator:
    """Emotion classes + probabilities from a local HF audio-classification checkpoint."""

    needs_audio = True
    field = "emotion"  # the prediction field the classifier's labels map onto

    def __init__(self, id: str, *, device: str = "cpu", model: str = "") -> None:
        """
        Args:
            id: prediction key under labels.pred.
            device: torch device (auto | cpu | cuda).
            model: local folder holding config, feature-extractor config and weights.
        """
        if not model:
            raise ValueError(f"annotator {id!r} ({self.kind}) needs model=<local folder>")
        self.id = id
        self.clf = HFAudioClassifier(model, device)
        self.version = folder_version(model)

    def describe(self) -> dict:
        return {"kind": self.kind, "model": str(self.clf.folder), "version": self.version,
                "labels": self.clf.id2label, "sample_rate": self.clf.sample_rate}

    def annotate(self, batch: list[AnnotatorInput]) -> list[dict]:
        return classify(self.clf, batch, self.field, self.version)
