"""An emotion / arousal / valence / dominance annotator fitted on the corpus's own training split.

Features: the prosodic measurements of `acoustic_features.measure` (energy, pitch, rate, voicing,
spectral centroid and their spreads). Models: softmax regression over the gold emotions present in
the training split, and one ridge regressor per gold dimension. Because it learns from the corpus,
it must never label a sample it was fitted on: the annotate command fits it on the training split
only and, with `--folds K`, labels training samples out-of-fold (see annotators/folds.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from paralm.creation.annotators.acoustic_features import FEATURE_NAMES, measure
from paralm.creation.annotators.base import AnnotatorInput, register_annotator
from paralm.creation.annotators.linear import Ridge, SoftmaxRegression, Standardizer
from paralm.data.schema import DIMENSIONS, EMOTIONS


@dataclass
class AcousticModel:
    """A fitted model: standardiser, optional classifier over `classes`, optional regressor per dimension."""

    scaler: Standardizer
    classes: list[str]
    classifier: SoftmaxRegression | None
    regressors: dict[str, Ridge] = field(default_factory=dict)
    n_train: int = 0
    digest: str = ""


@register_annotator("acoustic_fit")
class AcousticFitAnnotator:
    """Fitted prosody classifier/regressor; predictions only through the annotate command's fit/fold logic."""

    needs_audio = True

    def __init__(self, id: str, *, device: str = "cpu", l2: float = 0.01, steps: int = 500,
                 ridge: float = 1.0, min_per_class: int = 2) -> None:
        """
        Args:
            id: prediction key under labels.pred (out-of-fold ones under `<id>@oof`).
            device: unused (numpy only).
            l2: L2 penalty of the softmax regression.
            steps: gradient steps of the softmax regression.
            ridge: L2 penalty of the dimension regressors.
            min_per_class: emotions with fewer training samples than this are left out of the classifier.
        """
        self.id = id
        self.params = {"l2": l2, "steps": steps, "ridge": ridge, "min_per_class": min_per_class,
                       "features": list(FEATURE_NAMES)}
        self.version = "acoustic_fit-v1"

    def describe(self) -> dict:
        return {"kind": self.kind, "version": self.version, "params": self.params}

    def features(self, batch: list[AnnotatorInput]) -> np.ndarray:
        """(B,) clips -> (B, F) prosodic feature rows."""
        return np.stack([measure(b.audio, b.sample_rate).vector() for b in batch])

    def fit(self, x: np.ndarray, gold: list[dict]) -> AcousticModel:
        """Fit on (N, F) rows and their `labels.gold` dicts (missing labels are simply not used)."""
        scaler = Standardizer.fit(x)
        z = scaler(x)
        emotions = [g.get("emotion") for g in gold]
        counts = {e: emotions.count(e) for e in EMOTIONS}
        classes = [e for e in EMOTIONS if counts[e] >= self.params["min_per_class"]]
        classifier = None
        if len(classes) >= 2:
            rows = [i for i, e in enumerate(emotions) if e in classes]
            y = np.array([classes.index(emotions[i]) for i in rows])
            classifier = SoftmaxRegression.fit(z[rows], y, len(classes), self.params["l2"], self.params["steps"])
        regressors = {}
        for dim in DIMENSIONS:
            rows = [i for i, g in enumerate(gold) if g.get(dim) is not None]
            if len(rows) >= 2:
                target = np.array([float(gold[i][dim]) for i in rows])
                regressors[dim] = Ridge.fit(z[rows], target, self.params["ridge"])
        digest = hashlib.sha256(np.ascontiguousarray(x).tobytes() + repr(gold).encode()).hexdigest()[:12]
        return AcousticModel(scaler, classes, classifier, regressors, len(gold), digest)

    def predict(self, model: AcousticModel, x: np.ndarray) -> list[dict]:
        """(N, F) rows -> N predictions from `model`."""
        z = model.scaler(x)
        probs = model.classifier.predict_proba(z) if model.classifier is not None else None
        dims = {d: r.predict(z) for d, r in model.regressors.items()}
        out = []
        for i in range(len(x)):
            pred: dict = {"version": f"{self.version}@{model.digest}"}
            if probs is not None:
                pred["probs"] = dict(zip(model.classes, map(float, probs[i]), strict=True))
                pred["emotion"] = model.classes[int(np.argmax(probs[i]))]
            pred.update({d: float(v[i]) for d, v in dims.items()})
            out.append(pred)
        return out

    def annotate(self, batch: list[AnnotatorInput]) -> list[dict]:
        raise RuntimeError(f"annotator {self.id!r} (acoustic_fit) is fitted on the corpus; "
                           "run it through `paralm data annotate`, which fits it on the training split")
