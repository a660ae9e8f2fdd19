"""Optional gender classifier: a transformers audio-classification model in a local folder.

Label names map onto `GENDERS` (female | male | other). Output per clip: `gender`, `label` (raw winner),
`gender_probs`, and `gender_other_probs` for labels that don't map.
"""

from __future__ import annotations

from paralm.creation.annotators.base import AnnotatorInput, folder_version, register_annotator
from paralm.creation.annotators.hf_audio import HFAudioClassifier
from paralm.creation.annotators.hf_categorical import classify


@register_annotator("gender")
class GenderAnnotator:
    """Speaker gender from a local HF audio-classification checkpoint."""

    needs_audio = True

    def __init__(self, id: str, *, device: str = "cpu", model: str = "") -> None:
        """
        Args:
            id: prediction key under labels.pred.
            device: torch device (auto | cpu | cuda).
            model: local folder holding config, feature-extractor config and weights.
        """
        if not model:
            raise ValueError(f"annotator {id!r} (gender) needs model=<local folder>")
        self.id = id
        self.clf = HFAudioClassifier(model, device)
        self.version = folder_version(model)

    def describe(self) -> dict:
        return {"kind": self.kind, "model": str(self.clf.folder), "version": self.version,
                "labels": self.clf.id2label}

    def annotate(self, batch: list[AnnotatorInput]) -> list[dict]:
        return classify(self.clf, batch, "gender", self.version)
