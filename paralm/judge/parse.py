"""Strict parsing of judge replies into one rating, or a named failure.

A rating is taken only when the reply states exactly one: every JSON object in the reply that has a
"rating" field (bare or inside ```json fences) and every "Rating: N" statement outside those objects
counts, and two different values make the reply a failure ("conflicting_ratings"), as do a missing,
non-integer or out-of-range rating. Text inside the JSON rationale is never read as a rating, so a
rationale that quotes an injected "rating: 5" does not change the result. Failures are returned, not
raised, so the judge can record why a row stayed unjudged.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

FAILURE_REASONS = (
    "empty",
    "invalid_json",
    "missing_rating",
    "non_integer_rating",
    "out_of_range",
    "conflicting_ratings",
    "no_rating",
)

_RATING_TEXT = re.compile(
    r"\brating\b[\"'*\s]*(?:[:=]|\bis\b|\bof\b)[\"'*\s]*(-?\d+(?:\.\d+)?)", re.IGNORECASE
)
_FENCE = re.compile(r"```[a-zA-Z]*")
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class ParsedRating:
    """A rating the judge stated exactly once. `source` is "json" or "text" (the fallback)."""

    rating: int
    rationale: str
    source: str


@dataclass(frozen=True)
class ParseFailure:
    """Why no rating could be taken; `reason` is one of FAILURE_REASONS."""

    reason: str
    detail: str = ""


def _json_objects(text: str) -> list[tuple[dict, int, int]]:
    """Every top-level JSON object embedded in `text`, with its (start, end) span."""
    found = []
    i = text.find("{")
    while i != -1:
        try:
            obj, end = _DECODER.raw_decode(text, i)
        except json.JSONDecodeError:
            i = text.find("{", i + 1)
            continue
        if isinstance(obj, dict):
            found.append((obj, i, end))
        i = text.find("{", end)
    return found


def _as_int(value: object) -> int | None:
    """An integer rating from a JSON value or matched text; None if it is not a whole number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        s = value.strip()
        if re.fullmatch(r"-?\d+", s):
            return int(s)
        if re.fullmatch(r"-?\d+\.0+", s):
            return int(float(s))
    return None


def _outside(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with the given spans blanked out (so their contents are not scanned again)."""
    parts, last = [], 0
    for start, end in spans:
        parts.append(text[last:start])
        parts.append(" ")
        last = end
    parts.append(text[last:])
    return "".join(parts)


def parse_rating(text: str, min_rating: int, max_rating: int) -> ParsedRating | ParseFailure:
    """Parse a judge reply; see the module docstring for the rules."""
    if text is None or not text.strip():
        return ParseFailure("empty")
    objects = _json_objects(text)
    rest = _outside(text, [(s, e) for _, s, e in objects])
    candidates = [(obj["rating"], "json") for obj, _, _ in objects if "rating" in obj]
    candidates += [(m.group(1), "text") for m in _RATING_TEXT.finditer(rest)]
    if not candidates:
        if objects:
            return ParseFailure("missing_rating", "JSON object without a 'rating' field")
        if text.lstrip().startswith(("{", "```")):
            return ParseFailure("invalid_json", text.strip()[:80])
        return ParseFailure("no_rating", text.strip()[:80])
    values = []
    for raw, _ in candidates:
        value = _as_int(raw)
        if value is None:
            return ParseFailure("non_integer_rating", repr(raw)[:40])
        values.append(value)
    if len(set(values)) > 1:
        return ParseFailure("conflicting_ratings", f"ratings {sorted(set(values))}")
    rating = values[0]
    if not min_rating <= rating <= max_rating:
        return ParseFailure("out_of_range", f"{rating} not in {min_rating}..{max_rating}")
    return ParsedRating(rating=rating, rationale=_rationale(objects, text), source=candidates[0][1])


def _rationale(objects: list[tuple[dict, int, int]], text: str) -> str:
    """The JSON rationale when there is one, else the reply text without code fences."""
    for obj, _, _ in objects:
        if "rating" in obj and isinstance(obj.get("rationale"), str):
            return obj["rationale"].strip()
    return _FENCE.sub("", text).strip()
