"""Token, request and cost counters of one client, and the budget check that stops new requests.

Tokens are what the server reports in `usage`, counted for every reply that carried it (a reply the
client rejected, e.g. non-JSON content, was still billed). Cost follows from the configured prices.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Usage:
    """What a client has sent and spent so far.

    Args:
        prompt_tokens: prompt tokens billed by the server.
        completion_tokens: completion tokens billed by the server.
        requests_sent: HTTP requests sent, retries included.
        retries: requests sent again after a failed attempt.
        failed_attempts: attempts that ended in an error (HTTP error, timeout, unusable reply).
        cache_hits: requests answered from the cache without sending anything.
        deduplicated: requests that waited for an identical in-flight request instead of sending.
        errors: requests that ended with an ApiError.
        cost_usd: cost of the billed tokens at the configured prices.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests_sent: int = 0
    retries: int = 0
    failed_attempts: int = 0
    cache_hits: int = 0
    deduplicated: int = 0
    errors: int = 0
    cost_usd: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


class Ledger:
    """Adds billed tokens to a Usage and answers whether the budget still allows a new request.

    Args:
        price_per_1k_prompt: USD per 1,000 prompt tokens.
        price_per_1k_completion: USD per 1,000 completion tokens.
        budget_usd: spending cap; None for no cap.
    """

    def __init__(self, price_per_1k_prompt: float, price_per_1k_completion: float, budget_usd: float | None):
        if budget_usd is not None and budget_usd < 0:
            raise ValueError(f"budget_usd must be >= 0 or None, got {budget_usd}")
        self.price_prompt, self.price_completion = price_per_1k_prompt, price_per_1k_completion
        self.budget_usd = budget_usd
        self.usage = Usage()

    def bill(self, prompt_tokens: int, completion_tokens: int) -> None:
        u = self.usage
        u.prompt_tokens += prompt_tokens
        u.completion_tokens += completion_tokens
        u.cost_usd += (prompt_tokens * self.price_prompt + completion_tokens * self.price_completion) / 1000.0

    def budget_left(self) -> bool:
        """False once spending has reached the cap; requests already in flight still finish."""
        return self.budget_usd is None or self.usage.cost_usd < self.budget_usd
