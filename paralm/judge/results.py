"""Judged rows: a prediction plus the judge's verdict, and their JSONL form.

A row ends either judged (rating, score, rationale) or unjudged with a reason: `api:<reason>` when
the request failed (paralm.api.errors.REASONS) or `parse:<reason>` when the reply held no single
valid rating (paralm.judge.parse.FAILURE_REASONS). Unjudged rows carry no rating and no score, so
they cannot leak into a mean as 0. One JSONL line is the prediction's fields followed by the judge's
fields below (flat, so `pandas.read_json(lines=True)` gives a usable table).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

from paralm.formats.jsonl import read_jsonl, write_jsonl_atomic
from paralm.formats.predictions import PredictionRow

STATUSES = ("judged", "unjudged")


@dataclass
class JudgedRow:
    """The judge's verdict on one prediction.

    Args:
        prediction: the judged prediction row.
        status: "judged" or "unjudged".
        rating: the rating read from the judge's reply (None when unjudged).
        score: rating x rubric scale, on 0..100 (None when unjudged).
        rationale: the judge's rationale (None when unjudged).
        reason: why the row is unjudged: "api:<reason>" or "parse:<reason>" (None when judged).
        detail: one line of detail on the failure (empty when judged).
        injection_flags: names of injection detectors that fired on the answer.
        rubric: rubric name.
        rubric_version: rubric version.
        rubric_sha256: hash of the rubric text.
        judge_model: the judge model asked (the client's configured model).
        sample_index: which repeated judgement this is.
        input_hash: hash of rubric + judged fields; part of the cache key.
        prompt_tokens: prompt tokens billed for the reply used (cached: as billed originally).
        completion_tokens: completion tokens billed for the reply used.
        cached: True when the reply came from the cache (nothing sent).
        attempts: HTTP attempts made for this row in this run.
        reply: the judge's raw reply text, kept for audit (None when the request failed).
        truncated: {field: full length in characters} of every field cut before it was sent (the
            judge saw the first `--max-field-length` characters); empty when nothing was cut.
        reasks: how many times the judge was asked again after an unreadable reply (tokens and attempts
            above add up over every ask).
        reask_reasons: the parse failure of each reply that was asked again, in order.
    """

    prediction: PredictionRow
    status: str
    rating: int | None = None
    score: float | None = None
    rationale: str | None = None
    reason: str | None = None
    detail: str = ""
    injection_flags: list[str] = field(default_factory=list)
    rubric: str = ""
    rubric_version: int = 0
    rubric_sha256: str = ""
    judge_model: str = ""
    sample_index: int = 0
    input_hash: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    attempts: int = 0
    reply: str | None = None
    reasks: int = 0
    reask_reasons: list[str] = field(default_factory=list)
    truncated: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {STATUSES}")
        if (self.status == "judged") != (self.rating is not None and self.reason is None):
            raise ValueError(f"a judged row needs a rating and no reason, an unjudged one a reason: {self.item_id}")

    @property
    def item_id(self) -> str:
        return self.prediction.item_id

    @property
    def judged(self) -> bool:
        return self.status == "judged"

    def to_dict(self) -> dict:
        """Prediction fields, item_id, then the judge fields."""
        out = {**self.prediction.to_dict(), "item_id": self.item_id}
        for f in fields(self):
            if f.name != "prediction":
                out[f.name] = getattr(self, f.name)
        return out

    @classmethod
    def from_dict(cls, obj: dict) -> JudgedRow:
        names = judge_field_names()
        prediction = PredictionRow.from_dict(obj, reserved=names | {"item_id"})
        return cls(prediction=prediction, **{k: obj[k] for k in names if k in obj})


def judge_field_names() -> set[str]:
    """The JSON keys a judged row adds to a prediction row."""
    return {f.name for f in fields(JudgedRow)} - {"prediction"}


def read_judged(path: str | Path, allow_truncated_tail: bool = False) -> list[JudgedRow]:
    """Read judged rows; a directory means its judged.jsonl. Bad lines raise with their position."""
    path = Path(path)
    if path.is_dir():
        path = path / "judged.jsonl"
    rows = []
    for lineno, obj in read_jsonl(path, allow_truncated_tail=allow_truncated_tail):
        try:
            rows.append(JudgedRow.from_dict(obj))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}:{lineno}: {e}") from e
    return rows


def write_judged(path: str | Path, rows: Iterable[JudgedRow]) -> None:
    """Write judged rows atomically."""
    write_jsonl_atomic(path, (row.to_dict() for row in rows))
