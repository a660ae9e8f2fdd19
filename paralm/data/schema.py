"""The one definition of a shard sample's metadata (`{key}.json`), checked on write and on read.

Why one definition: packing, creation stages, the reader, prompts and evaluation all look at the
same JSON; if each checked it its own way, a field one of them tolerates would crash another hours
into a run. `validate_sample` is called by every writer (refuses bad metadata) and by the reader
(counts bad metadata as a `schema` skip).

Layout (unknown fields at any level are kept untouched):
    key          str, [A-Za-z0-9][A-Za-z0-9_-+=@,:~]*, at most 90 chars (also the tar member stem)
    transcript   str (may be empty before transcription; the reader skips empty ones by default)
    duration     seconds, finite number >= 0
    corpus       non-empty str
    split        non-empty str of [A-Za-z0-9_-] (train, val, test, ...)
    source_kind  optional str: "general" | "implicit"
    labels.gold  {emotion, arousal, valence, dominance, gender}, each optional
    labels.pred  {annotator_id: {emotion, probs, arousal, valence, dominance, gender, version}}
    qa           [{question, answer, type: C|CP|DP, origin: human|llm|template, asks, generator: {...}}]
                 asks: what the question is about, one of QA_ASKS; optional (foreign data may lack
                 it: the scorers then infer it from the question text and count the fallback)
    words        optional [{w, start, end}] with 0 <= start <= end
Gold labels (human or construction) and annotator predictions are kept apart on purpose: the
explicit method trains on predictions and only the oracle ablation reads gold labels.
Arousal, valence and dominance are on a 0..1 scale; emotions come from `EMOTIONS`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "fearful", "surprised", "disgusted")
QUESTION_TYPES: tuple[str, ...] = ("C", "CP", "DP")
QA_ORIGINS: tuple[str, ...] = ("human", "llm", "template")
# What a QA item asks about: the words (content), one attribute of the voice, or the voice read together
# with the words (context: does the tone fit, how to answer the speaker); "other" for anything else.
QA_ASKS: tuple[str, ...] = ("content", "emotion", "gender", "arousal", "valence", "dominance", "context", "other")
GENDERS: tuple[str, ...] = ("female", "male", "other")
SOURCE_KINDS: tuple[str, ...] = ("general", "implicit")
DIMENSIONS: tuple[str, ...] = ("arousal", "valence", "dominance")
REQUIRED_FIELDS: tuple[str, ...] = ("key", "transcript", "duration", "corpus", "split")

KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-+=@,:~]{0,89}")
SPLIT_PATTERN = re.compile(r"[A-Za-z0-9_\-]+")
ANNOTATOR_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-.@:+]*")


class SchemaError(ValueError):
    """Sample metadata that does not follow the shard schema; the message names the field."""


class StrictJSONError(ValueError):
    """Text that Python's `json` would accept but strict JSON (RFC 8259, UTF-8) refuses, or cannot hold."""


def _refuse_constant(name: str):
    raise StrictJSONError(f"{name} is not JSON (only finite numbers are)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJSONError(f"number {text[:40]!r} is out of range (not a finite double)")
    return value


def dumps_strict(value: Any) -> bytes:
    """The bytes every writer stores for a JSON document (shard members, index.json, manifests): UTF-8,
    non-ASCII kept as is, NaN/Infinity refused (ValueError)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")


def loads_strict(text: str | bytes) -> Any:
    """Parse one JSON document the way writers write it: no NaN/Infinity, finite numbers, valid Unicode.

    Why: Python's `json.loads` accepts `NaN`, `Infinity` and `1e999` (which writers then refuse with
    `allow_nan=False`), lone surrogates (which break the first UTF-8 encode downstream), and raises
    ValueError/RecursionError rather than JSONDecodeError for 5,000-digit integers and very deep nesting.
    Every such case becomes one `StrictJSONError` (or `json.JSONDecodeError` for text that is not JSON), so
    a caller counts one bad row instead of crashing. Reading and writing then agree on what JSON is.
    """
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
        dumps_strict(value)
    except (StrictJSONError, json.JSONDecodeError):
        raise
    except UnicodeError as exc:
        raise StrictJSONError(f"invalid Unicode ({exc.reason}, e.g. a lone surrogate)") from None
    except RecursionError:
        raise StrictJSONError("nesting too deep") from None
    except ValueError as exc:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        raise StrictJSONError(str(exc).split(";")[0]) from None
    return value


def validate_sample(meta: dict) -> dict:
    """Check `meta` against the schema and return it unchanged; raise `SchemaError` naming the bad field."""
    if not isinstance(meta, dict):
        raise SchemaError(f"sample metadata must be a JSON object, got {type(meta).__name__}")
    missing = [f for f in REQUIRED_FIELDS if f not in meta]
    if missing:
        raise SchemaError(
            f"missing required field(s) {', '.join(missing)}; required: {', '.join(REQUIRED_FIELDS)}"
        )
    validate_key(meta["key"])
    _string(meta["transcript"], "transcript", allow_empty=True)
    _number(meta["duration"], "duration", low=0.0)
    _string(meta["corpus"], "corpus")
    _pattern(meta["split"], "split", SPLIT_PATTERN)
    if "source_kind" in meta:
        _choice(meta["source_kind"], "source_kind", SOURCE_KINDS)
    if "labels" in meta:
        _labels(meta["labels"])
    if "qa" in meta:
        _qa(meta["qa"])
    if "words" in meta:
        _words(meta["words"])
    return meta


def validate_key(key: Any) -> str:
    """Keys name tar members and files, so they are restricted to a portable character set."""
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise SchemaError(
            f"key: {key!r} is not a valid key (1-90 chars: letters, digits and _-+=@,:~, starting with a "
            "letter or digit)"
        )
    return key


def _labels(labels: Any) -> None:
    _object(labels, "labels")
    if "gold" in labels:
        _label_set(labels["gold"], "labels.gold")
    if "pred" in labels:
        _object(labels["pred"], "labels.pred")
        for annotator, pred in labels["pred"].items():
            _pattern(annotator, "labels.pred annotator id", ANNOTATOR_PATTERN)
            where = f"labels.pred.{annotator}"
            _label_set(pred, where)
            if "probs" in pred:
                _probs(pred["probs"], f"{where}.probs")
            if "version" in pred:
                _string(pred["version"], f"{where}.version", allow_empty=True)


def _label_set(labels: Any, where: str) -> None:
    _object(labels, where)
    if labels.get("emotion") is not None:
        _choice(labels["emotion"], f"{where}.emotion", EMOTIONS)
    for dim in DIMENSIONS:
        if labels.get(dim) is not None:
            _number(labels[dim], f"{where}.{dim}", low=0.0, high=1.0)
    if labels.get("gender") is not None:
        _choice(labels["gender"], f"{where}.gender", GENDERS)


def _probs(probs: Any, where: str) -> None:
    _object(probs, where)
    for emotion, p in probs.items():
        _choice(emotion, f"{where} key", EMOTIONS)
        _number(p, f"{where}.{emotion}", low=0.0, high=1.0)


def _qa(qa: Any) -> None:
    if not isinstance(qa, list):
        raise SchemaError(f"qa: must be a list of question/answer objects, got {type(qa).__name__}")
    for i, pair in enumerate(qa):
        where = f"qa[{i}]"
        _object(pair, where)
        for name in ("question", "answer", "type", "origin"):
            if name not in pair:
                raise SchemaError(
                    f"{where}: missing {name!r}; each pair needs question, answer, type, origin"
                )
        _string(pair["question"], f"{where}.question")
        _string(pair["answer"], f"{where}.answer")
        _choice(pair["type"], f"{where}.type", QUESTION_TYPES)
        _choice(pair["origin"], f"{where}.origin", QA_ORIGINS)
        if "asks" in pair:
            _choice(pair["asks"], f"{where}.asks", QA_ASKS)
        if "generator" in pair:
            _object(pair["generator"], f"{where}.generator")


def _words(words: Any) -> None:
    if not isinstance(words, list):
        raise SchemaError(f"words: must be a list of {{w, start, end}} objects, got {type(words).__name__}")
    for i, word in enumerate(words):
        where = f"words[{i}]"
        _object(word, where)
        _string(word.get("w"), f"{where}.w")
        start = _number(word.get("start"), f"{where}.start", low=0.0)
        end = _number(word.get("end"), f"{where}.end", low=0.0)
        if end < start:
            raise SchemaError(f"{where}: end {end} is before start {start}")


# --- primitive checks -------------------------------------------------------------------------
def _object(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise SchemaError(f"{where}: must be an object, got {type(value).__name__}")


def _string(value: Any, where: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise SchemaError(f"{where}: must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise SchemaError(f"{where}: must not be empty")
    return value


def _number(value: Any, where: str, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SchemaError(f"{where}: must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise SchemaError(f"{where}: {value!r} is outside [{low}, {'inf' if high is None else high}]")
    return float(value)


def _choice(value: Any, where: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise SchemaError(f"{where}: {value!r} is not one of {', '.join(choices)}")
    return value


def _pattern(value: Any, where: str, pattern: re.Pattern) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise SchemaError(f"{where}: {value!r} does not match {pattern.pattern}")
    return value
