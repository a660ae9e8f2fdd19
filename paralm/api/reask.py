"""The stricter format reminder of a re-ask, shared by the judge and the QA generator.

Why: small local models (SmolLM2-135M as judge: 0 of 20 replies parseable) often answer in prose.
When a reply has no usable content, both callers ask again (`--invalid-retries`, default 2) with a new
sample index and seed, and with this reminder appended to the last user turn, so the new request
differs from the first one in what it asks, not only in its randomness. Never imports torch.
"""

from __future__ import annotations

REMINDER = (
    "IMPORTANT: your previous reply could not be read. Reply with exactly one JSON object and nothing else: "
    "no prose before or after it, no code fence, no second object. It must look like this: {example}"
)


def with_format_reminder(messages: list[dict], example: str, attempt: int) -> list[dict]:
    """`messages` unchanged for the first ask (attempt 0); for a re-ask, a copy whose last user turn
    ends with the stricter reminder showing `example`."""
    if attempt <= 0:
        return messages
    out = [dict(m) for m in messages]
    last_user = max(i for i, m in enumerate(out) if m.get("role") == "user")
    out[last_user]["content"] = f"{out[last_user]['content']}\n\n{REMINDER.format(example=example)}"
    return out
