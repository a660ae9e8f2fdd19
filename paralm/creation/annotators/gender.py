"""Optional gender classifier: a transformers audio-classification model in a local folder.

Label names map onto `GENDERS` (female | male | other). Output per clip: `gender`, `label` (raw winner),
`gender_probs`, and `gender_other_probs` for labels that don't map.
"""

from __future__ import annotations

from paralm.creation.annotators.base import register_annotator
from paralm.creation.annotators.hf_categorical import HFCategoricalAnnotator


@register_annotator("gender")
class GenderAnnotator(HFCategoricalAnnotator):
    """Speaker gender from a local HF audio-classification checkpoint (same loading, another label field)."""

    field = "gender"
