"""Vet the token counts a server reports, so a budget cannot be bypassed by what it says it used.

Cost is computed from the reply's `usage`, which the server alone decides. A reply without `usage`, or
with counts that are negative, not integers, absurdly large or smaller than the text could possibly
hold (0 prompt tokens for a 2,000-character prompt), would bill nothing or nonsense. Such counts are
replaced by an estimate from the request and reply size, and the reply is counted (missing or invalid
usage), so the budget keeps holding and the report shows how often the server misbehaved.

The estimate is deliberately high (one token per 3 characters, plus 4 per message, where English
averages about 4 characters per token), so a budget errs on the side of stopping early.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

CHARS_PER_TOKEN_ESTIMATE = 3  # below the ~4 of English text: estimates run high
TOKENS_PER_MESSAGE = 4  # chat-template overhead per message
MAX_TOKENS_PER_REPLY = 10_000_000  # no model reads or writes this much in one request
MAX_CHARS_PER_TOKEN = 64  # fewer tokens than characters / 64 cannot have been billed honestly


@dataclass(frozen=True)
class CheckedTokens:
    """Tokens to bill for one reply, and what was wrong with the server's own numbers."""

    prompt: int
    completion: int
    problem: str | None = None  # None | "missing" | "invalid"


def message_chars(messages: Any) -> tuple[int, int]:
    """(characters of text, number of messages) of OpenAI chat messages (string or typed-part content)."""
    chars = count = 0
    for m in messages if isinstance(messages, list) else []:
        if not isinstance(m, dict):
            continue
        count += 1
        content = m.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(str(p.get("text", ""))) for p in content if isinstance(p, dict))
    return chars, count


def estimate_tokens(chars: int, messages: int = 0) -> int:
    """A high estimate of the tokens `chars` characters in `messages` chat messages take."""
    return math.ceil(chars / CHARS_PER_TOKEN_ESTIMATE) + TOKENS_PER_MESSAGE * messages


def _plausible(value: Any, chars: int) -> bool:
    """A count that an honest server could have billed for `chars` characters of text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return False
    if value != int(value) or not 0 <= value <= MAX_TOKENS_PER_REPLY:
        return False
    return value >= max(chars // MAX_CHARS_PER_TOKEN, 1 if chars else 0)


def reply_text(payload: dict[str, Any]) -> str:
    """The first choice's message content, or "" when the reply has none."""
    choices = payload.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            return content
    return ""


def checked_tokens(payload: dict[str, Any], messages: Any) -> CheckedTokens:
    """The (prompt, completion) tokens to bill for a decoded reply to a request with `messages`.

    Each count the server gave that is plausible is kept; each one that is not is estimated.
    """
    in_chars, n_messages = message_chars(messages)
    out_chars = len(reply_text(payload))
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return CheckedTokens(estimate_tokens(in_chars, n_messages), estimate_tokens(out_chars), "missing")
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    prompt_ok, completion_ok = _plausible(prompt, in_chars), _plausible(completion, out_chars)
    return CheckedTokens(
        int(prompt) if prompt_ok else estimate_tokens(in_chars, n_messages),
        int(completion) if completion_ok else estimate_tokens(out_chars),
        None if prompt_ok and completion_ok else "invalid",
    )
