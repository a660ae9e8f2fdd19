"""The predictions JSONL format: one generated answer per line, the input of judging and scoring.

Written by the evaluation callback and the ablation runner, read by `paralm judge`, the
deterministic scorers and `paralm judge-validate`. One line:

    {"key": "ses01_0042", "question": "How does the speaker feel?", "type": "DP",
     "reference": "She sounds angry.", "answer": "The speaker is angry.", "emotion": "angry",
     "neutral_text": false, "system": "implicit", "seed": 0, "audio": "clips/ses01_0042.flac"}

`key` names the audio sample; one sample may carry several questions, so rows are identified by
`item_id` (key + a hash of the question), which is the same across systems and lets
`judge-validate` pair items. Unknown fields are kept and written back unchanged. Never imports torch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

from paralm.data.schema import QA_ASKS
from paralm.formats.jsonl import read_jsonl, write_jsonl_atomic

QUESTION_TYPES = ("C", "CP", "DP")
LABEL_KINDS = ("emotion", "gender")
_REQUIRED = ("key", "question", "type", "reference", "answer")


@dataclass
class PredictionRow:
    """One model answer to one question about one audio sample.

    Args:
        key: the audio sample's key (shared by all questions about that sample).
        question: the question the model was asked.
        type: question type: C (content), CP (contextual paralinguistic), DP (direct paralinguistic).
        reference: the reference answer.
        answer: the model's answer.
        emotion: the sample's gold emotion label, when known (used to group results by emotion).
        neutral_text: whether the transcript alone reads as emotionally neutral, when known.
        gender: the speaker's gold gender label, when known.
        label: the single correct label of a DP question, when the writer knows it; otherwise the
            scorers read it from the reference.
        label_kind: what `label` is about: emotion or gender; inferred from the question when absent.
        asks: what the question asks (one of `paralm.data.schema.QA_ASKS`), recorded on the QA item when
            it was made; when absent the scorers infer it from the question text and count that.
        system: name of the system (ablation row, checkpoint) that produced the answer.
        row: ablation row name, when produced by the ablation runner.
        seed: the run's seed.
        audio: path to the audio clip, for tables that play it back.
        extra: unknown fields, kept so they round-trip.
    """

    key: str
    question: str
    type: str
    reference: str
    answer: str
    emotion: str | None = None
    neutral_text: bool | None = None
    gender: str | None = None
    label: str | None = None
    label_kind: str | None = None
    asks: str | None = None
    system: str | None = None
    row: str | None = None
    seed: int | None = None
    audio: str | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in QUESTION_TYPES:
            raise ValueError(f"question type {self.type!r} of {self.key!r} is not one of {QUESTION_TYPES}")
        if self.label_kind is not None and self.label_kind not in LABEL_KINDS:
            raise ValueError(f"label_kind {self.label_kind!r} of {self.key!r} is not one of {LABEL_KINDS}")
        if self.asks is not None and self.asks not in QA_ASKS:
            raise ValueError(f"asks {self.asks!r} of {self.key!r} is not one of {QA_ASKS}")
        for name in _REQUIRED:
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"field {name!r} of {self.key!r} must be a string")

    @property
    def item_id(self) -> str:
        """Stable id of (sample, question), identical across systems that answered the same item."""
        digest = hashlib.sha256(self.question.encode("utf-8")).hexdigest()[:10]
        return f"{self.key}::{digest}"

    def to_dict(self) -> dict:
        """The JSON object of this row: known fields (None ones left out), then the kept extras."""
        out = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = value
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, obj: dict, reserved: Iterable[str] = ()) -> PredictionRow:
        """Build from a JSON object; keys in `reserved` (another layer's fields) are not kept as extras."""
        missing = [name for name in _REQUIRED if name not in obj]
        if missing:
            raise ValueError(f"prediction row is missing required field(s) {missing}")
        known = {f.name for f in fields(cls)} - {"extra"}
        skip = known | set(reserved)
        kwargs = {k: obj[k] for k in known if k in obj}
        kwargs["extra"] = {k: v for k, v in obj.items() if k not in skip}
        return cls(**kwargs)


def read_predictions(path: str | Path) -> list[PredictionRow]:
    """Read and validate a predictions file; duplicate items and bad rows raise with their line."""
    rows: list[PredictionRow] = []
    seen: dict[str, int] = {}
    for lineno, obj in read_jsonl(path):
        try:
            row = PredictionRow.from_dict(obj)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}:{lineno}: {e}") from e
        if row.item_id in seen:
            raise ValueError(
                f"{path}:{lineno}: duplicate item (key {row.key!r}, same question) first on line {seen[row.item_id]}"
            )
        seen[row.item_id] = lineno
        rows.append(row)
    return rows


def write_predictions(path: str | Path, rows: Iterable[PredictionRow]) -> None:
    """Write rows atomically (temp file + rename), one JSON object per line."""
    write_jsonl_atomic(path, (row.to_dict() for row in rows))
