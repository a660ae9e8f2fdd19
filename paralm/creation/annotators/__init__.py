"""Annotators for `paralm data annotate`: a registry of kinds behind one interface (see base.py).

Kinds: hf_categorical (emotion from an HF audio classifier), msp_dim (arousal/dominance/valence
from a wav2vec2 MSP-dim regressor), gender (HF audio classifier), external (any python callable),
ensemble (mean of other annotators' probabilities), acoustic (model-free prosody -> arousal),
acoustic_fit (prosody classifier fitted on the corpus's training split, out-of-fold on it).
"""

from paralm.creation.annotators import (  # noqa: F401  (imported to register their kinds)
    acoustic,
    acoustic_fit,
    ensemble,
    external,
    gender,
    hf_categorical,
    msp_dim,
)
from paralm.creation.annotators.base import (
    ANNOTATORS,
    Annotator,
    AnnotatorInput,
    AnnotatorSpec,
    FittableAnnotator,
    build_annotator,
    clean_prediction,
    parse_spec,
    register_annotator,
    resolve_device,
)

__all__ = [
    "ANNOTATORS",
    "Annotator",
    "AnnotatorInput",
    "AnnotatorSpec",
    "FittableAnnotator",
    "build_annotator",
    "clean_prediction",
    "parse_spec",
    "register_annotator",
    "resolve_device",
]
