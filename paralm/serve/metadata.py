"""Explicit-mode metadata given by the user (`--metadata "emotion=angry,arousal=0.8"`, or a request's
`metadata` object), placed where the model's recorded metadata source reads it. Nothing is guessed:
fields the user leaves out say "unknown" in the block, as they do in training for a missing label."""

from __future__ import annotations

from paralm.data.prompts import AFFECT_DIMENSIONS, PromptConfig, parse_metadata_source
from paralm.fault.exits import UserError

FIELDS = ("emotion", *AFFECT_DIMENSIONS, "gender")


def parse_metadata_text(text: str) -> dict:
    """"emotion=angry,arousal=0.8" -> {"emotion": "angry", "arousal": 0.8}; unknown fields and
    non-numeric affect values are refused in one line."""
    labels: dict = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        labels[name.strip()] = value.strip() if sep else None
    return check_labels(labels)


def check_labels(labels: dict) -> dict:
    """The labels with affect values as floats; raises ValueError naming the bad field."""
    if not isinstance(labels, dict):
        raise ValueError("metadata must be an object such as {\"emotion\": \"angry\", \"arousal\": 0.8}")
    out: dict = {}
    for name, value in labels.items():
        if name not in FIELDS:
            raise ValueError(f"unknown metadata field {name!r}; valid: {', '.join(FIELDS)}")
        if value is None or value == "":
            raise ValueError(f"metadata field {name!r} has no value (write {name}=VALUE)")
        if name in AFFECT_DIMENSIONS:
            try:
                out[name] = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"metadata {name}={value!r} is not a number") from None
        else:
            out[name] = str(value)
    return out


def sample_meta(labels: dict | None, prompt: PromptConfig, model_name: str) -> dict:
    """A sample's metadata dict holding `labels` where `prompt.metadata` looks them up.

    Explicit-mode models need labels; plain-mode models refuse them (they never saw a block)."""
    if not prompt.uses_metadata:
        if labels:
            raise UserError(f"{model_name} was trained in plain mode and reads no metadata; leave it out")
        return {}
    if not labels:
        raise UserError(f"{model_name} was trained in explicit mode (metadata {prompt.metadata}); give the labels, "
                        "e.g. --metadata \"emotion=angry,arousal=0.8\" (no annotator is saved with this model)")
    kind, annotator = parse_metadata_source(prompt.metadata)
    if kind == "gold":
        return {"labels": {"gold": dict(labels)}}
    return {"labels": {"pred": {annotator: dict(labels)}}}
