"""Read QA pairs out of an LLM reply: find the JSON, check it against the pair schema, or say why not.

Servers without structured output wrap JSON in prose or code fences, so parsing is lenient about where
the JSON sits (the whole reply, a fenced block, or the first object/array that decodes) and strict about
what it holds. A reply with no JSON, or JSON of the wrong shape, is an `InvalidGeneration` with a reason
the generator counts and retries; single malformed pairs inside a good reply are dropped and counted.
Every kept pair records what it asks (`asks`): the generator's own value when it is a valid one, else
the question-text guess of `paralm.eval.labels.infer_asks` (pairs from prompts before implicit-qa/2).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from paralm.data.schema import QA_ASKS, QUESTION_TYPES
from paralm.eval.labels import infer_asks

INVALID_REASONS = ("not_json", "schema_invalid", "too_few_pairs")
FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)


class InvalidGeneration(ValueError):
    """A reply that holds no usable set of pairs.

    Attributes:
        reason: one of `INVALID_REASONS`.
    """

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in INVALID_REASONS:
            raise ValueError(f"unknown invalid-generation reason {reason!r}; valid: {list(INVALID_REASONS)}")
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


@dataclass
class ParsedPairs:
    """Pairs read from one reply.

    Args:
        pairs: valid pairs as {type, question, answer, asks}, in reply order, at most `pairs_max`.
        dropped: counts of pairs left out: `malformed_pair` (wrong fields) and `over_limit` (beyond pairs_max).
    """

    pairs: list[dict] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)


def _candidates(text: str) -> list[str]:
    """Places JSON may hide in a reply, most likely first: the whole text, fenced blocks."""
    return [text.strip()] + [m.group(1).strip() for m in FENCE.finditer(text)]


def extract_json(text: str) -> Any:
    """The first JSON value found in `text`; raises InvalidGeneration("not_json") when there is none."""
    decoder = json.JSONDecoder()
    for chunk in _candidates(text):
        try:
            return json.loads(chunk)
        except ValueError:
            pass
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                value, _ = decoder.raw_decode(text, i)
            except ValueError:
                continue
            if isinstance(value, (dict, list)):
                return value
    preview = " ".join(text.split())[:80]
    raise InvalidGeneration("not_json", f"no JSON object or array in the reply ({preview!r})")


def _pair_list(value: Any) -> list:
    if isinstance(value, dict) and isinstance(value.get("pairs"), list):
        return value["pairs"]
    if isinstance(value, list):
        return value
    shape = f"object with keys {sorted(value)[:5]}" if isinstance(value, dict) else type(value).__name__
    raise InvalidGeneration("schema_invalid", f"expected {{'pairs': [...]}} or a list, got {shape}")


def _clean_pair(item: Any) -> dict | None:
    """{type, question, answer, asks} with the type upper-cased, or None when a field is missing or wrong."""
    if not isinstance(item, dict):
        return None
    qtype = str(item.get("type", "")).strip().upper()
    question, answer = item.get("question"), item.get("answer")
    if qtype not in QUESTION_TYPES or not isinstance(question, str) or not isinstance(answer, str):
        return None
    question, answer = " ".join(question.split()), " ".join(answer.split())
    if not question or not answer:
        return None
    asks = str(item.get("asks", "")).strip().lower()
    if asks not in QA_ASKS:
        asks = infer_asks(qtype, question)
    return {"type": qtype, "question": question, "answer": answer, "asks": asks}


def parse_pairs(text: str, pairs_min: int, pairs_max: int) -> ParsedPairs:
    """Valid pairs from a reply; raises InvalidGeneration when fewer than `pairs_min` survive."""
    items = _pair_list(extract_json(text))
    out = ParsedPairs()
    for item in items:
        pair = _clean_pair(item)
        if pair is None:
            out.dropped["malformed_pair"] = out.dropped.get("malformed_pair", 0) + 1
        elif len(out.pairs) >= pairs_max:
            out.dropped["over_limit"] = out.dropped.get("over_limit", 0) + 1
        else:
            out.pairs.append(pair)
    if len(out.pairs) < pairs_min:
        raise InvalidGeneration("too_few_pairs", f"{len(out.pairs)} valid pair(s) of {len(items)}, need {pairs_min}")
    return out
