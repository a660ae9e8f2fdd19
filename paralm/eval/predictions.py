"""Old import path of `paralm.formats.predictions` (moved so that the judge need not import paralm.eval)."""

from paralm.formats.predictions import (
    LABEL_KINDS,
    QUESTION_TYPES,
    PredictionRow,
    read_predictions,
    write_predictions,
)

__all__ = ["LABEL_KINDS", "QUESTION_TYPES", "PredictionRow", "read_predictions", "write_predictions"]
