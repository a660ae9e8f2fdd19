"""How long to wait before the next attempt: the server's Retry-After when it gives one, else backoff.

A server that says how long to wait knows better than any backoff formula, so its Retry-After is
honoured exactly up to a cap; beyond the cap, waiting would stall a whole run, so the request fails
fast and the caller decides. Without a hint, jittered exponential backoff spreads retries of many
concurrent requests so they do not hit the server again in lockstep.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds the server asks us to wait, from `retry-after-ms`, or `retry-after` (seconds or HTTP
    date); None when absent or unreadable (then backoff applies)."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    millis = lower.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass  # fall through to the seconds header
    value = lower.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass  # not a number: try the HTTP-date form
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Delay before retry number `attempt` (1-based): half of min(max_s, base_s * 2**(attempt-1)) plus
    a uniform jitter over the other half, so waits grow but never synchronise."""
    ceiling = min(max_s, base_s * (2.0 ** max(0, attempt - 1)))
    return ceiling / 2.0 + rng.uniform(0.0, ceiling / 2.0)
