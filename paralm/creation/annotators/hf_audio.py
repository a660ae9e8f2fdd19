"""Shared batched inference for transformers audio-classification models stored in a local folder.

Used by the categorical-emotion and gender annotators. Weights come only from the folder (never a
hub), and the model runs in fp32 on the chosen device with the feature extractor's own padding and
attention mask, so a clip's probabilities do not depend on which clips share its batch beyond what
the architecture itself allows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soxr

from paralm.creation.annotators.base import AnnotatorInput, resolve_device


def resample_inputs(batch: list[AnnotatorInput], rate: int) -> list[np.ndarray]:
    """The batch's audio at `rate` (soxr when the stage decoded at another rate)."""
    out = []
    for item in batch:
        audio = item.audio
        if item.sample_rate != rate:
            audio = soxr.resample(audio, item.sample_rate, rate).astype(np.float32)
        out.append(audio)
    return out


class HFAudioClassifier:
    """AutoFeatureExtractor + AutoModelForAudioClassification from `folder`; `probs(batch)` -> (B, C)."""

    def __init__(self, folder: str | Path, device: str = "cpu") -> None:
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"model folder {folder} does not exist")
        self.folder = folder
        self.device = resolve_device(device)
        self.extractor = AutoFeatureExtractor.from_pretrained(folder, local_files_only=True)
        self.model = AutoModelForAudioClassification.from_pretrained(folder, local_files_only=True)
        self.model.to(self.device).eval()
        self.sample_rate = int(getattr(self.extractor, "sampling_rate", 16000))
        self.id2label = {int(k): str(v) for k, v in self.model.config.id2label.items()}

    def probs(self, batch: list[AnnotatorInput]) -> np.ndarray:
        """(B,) clips -> (B, C) softmax probabilities, C = number of model labels.

        Extractors that give no attention mask (models trained without one) would let padding change
        a clip's result, so clips of unequal length are then run one at a time.
        """
        audio = resample_inputs(batch, self.sample_rate)
        inputs = self.extractor(audio, sampling_rate=self.sample_rate, padding=True, return_tensors="pt")
        if "attention_mask" not in inputs and len({len(a) for a in audio}) > 1:
            return np.concatenate([self._run(self.extractor(a, sampling_rate=self.sample_rate, return_tensors="pt"))
                                   for a in audio])
        return self._run(inputs)

    def _run(self, inputs) -> np.ndarray:
        import torch

        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.inference_mode():
            logits = self.model(**inputs).logits  # (B, C)
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()
