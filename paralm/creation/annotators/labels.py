"""Map a model's own label names (its `id2label`) onto the project's vocabularies.

Models name classes differently ("ang", "anger", "生气/angry", "Female", "F"); the shard schema
accepts only `EMOTIONS` and `GENDERS`. Names that map are folded together (their probabilities
summed); names that don't ("other", "<unk>") are kept verbatim under `other_probs`, never dropped.
"""

from __future__ import annotations

from paralm.data.schema import EMOTIONS, GENDERS

EMOTION_ALIASES: dict[str, str] = {
    "neu": "neutral", "neutral": "neutral", "calm": "neutral",
    "hap": "happy", "happy": "happy", "happiness": "happy", "joy": "happy", "exc": "happy",
    "sad": "sad", "sadness": "sad",
    "ang": "angry", "angry": "angry", "anger": "angry",
    "fea": "fearful", "fear": "fearful", "fearful": "fearful",
    "sur": "surprised", "surprise": "surprised", "surprised": "surprised",
    "dis": "disgusted", "disgust": "disgusted", "disgusted": "disgusted",
}
GENDER_ALIASES: dict[str, str] = {
    "f": "female", "female": "female", "woman": "female", "women": "female",
    "m": "male", "male": "male", "man": "male", "men": "male",
    "other": "other",
}
VOCABULARIES: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "emotion": (EMOTION_ALIASES, EMOTIONS),
    "gender": (GENDER_ALIASES, GENDERS),
}


def map_label(name: str, field: str) -> str | None:
    """A model label -> the project's name for it, or None when it has none.

    Bilingual names such as "生气/angry" are matched on any `/`-separated part.
    """
    aliases, _ = VOCABULARIES[field]
    for part in reversed(str(name).split("/")):
        mapped = aliases.get(part.strip().lower())
        if mapped is not None:
            return mapped
    return None


def split_probs(id2label: dict[int, str], probs: list[float], field: str) -> tuple[dict, dict]:
    """Class probabilities -> ({project label: p}, {unmapped model label: p})."""
    mapped: dict[str, float] = {}
    other: dict[str, float] = {}
    for idx, p in enumerate(probs):
        name = str(id2label.get(idx, f"LABEL_{idx}"))
        target = map_label(name, field)
        if target is None:
            other[name] = other.get(name, 0.0) + float(p)
        else:
            mapped[target] = mapped.get(target, 0.0) + float(p)
    return mapped, other


def top_label(mapped: dict[str, float], other: dict[str, float]) -> tuple[str | None, str]:
    """(project label or None, raw winner name): the project label only if the overall winner maps."""
    best_mapped = max(mapped.items(), key=lambda kv: kv[1], default=(None, -1.0))
    best_other = max(other.items(), key=lambda kv: kv[1], default=(None, -1.0))
    if best_mapped[1] >= best_other[1]:
        return best_mapped[0], str(best_mapped[0])
    return None, str(best_other[0])
