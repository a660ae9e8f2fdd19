"""Token, request and cost counters of one client, and the budget check that stops new requests.

Tokens are what the server reports in `usage`, counted for every reply that carried it (a reply the
client rejected, e.g. non-JSON content, was still billed), after `usage_check` has vetted them: a reply
without usage, or with negative, non-integer, absurd or understated counts, is billed at an estimate
from the request and reply size instead, and counted (`usage_missing`, `usage_invalid`), so a server
cannot slip past a budget by under-reporting. Cost follows from the configured prices; a budget needs
prices (`check_budget_prices`), and a run that stopped at its budget ends with EXIT_BUDGET
(`budget_stop`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from paralm.fault.exits import EXIT_BUDGET, FaultExit


@dataclass
class Usage:
    """What a client has sent and spent so far.

    Args:
        prompt_tokens: prompt tokens billed by the server (estimated where its usage was unusable).
        completion_tokens: completion tokens billed by the server (estimated likewise).
        requests_sent: HTTP requests sent, retries included.
        retries: requests sent again after a failed attempt.
        failed_attempts: attempts that ended in an error (HTTP error, timeout, unusable reply).
        cache_hits: requests answered from the cache without sending anything.
        deduplicated: requests that waited for an identical in-flight request instead of sending.
        errors: requests that ended with an ApiError.
        cost_usd: cost of the billed tokens at the configured prices.
        usage_missing: replies without a `usage` block (tokens estimated from the request/reply size).
        usage_invalid: replies whose `usage` was negative, not an integer, absurdly large or below what
            the text can hold (a protocol error; tokens estimated from the request/reply size).
        budget_refused: requests not sent because the budget was spent.
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
    usage_missing: int = 0
    usage_invalid: int = 0
    budget_refused: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def check_budget_prices(budget_usd: float | None, price_per_1k_prompt: float, price_per_1k_completion: float) -> None:
    """Refuse settings under which a budget could never trip: a negative budget or price, or a budget
    above 0 with both prices 0 (every request would cost 0 USD, so `--budget-usd` would silently do
    nothing). A budget of 0 needs no prices: it sends nothing and serves only what is cached."""
    if price_per_1k_prompt < 0 or price_per_1k_completion < 0:
        raise ValueError(f"prices must be >= 0, got price_per_1k_prompt={price_per_1k_prompt}, "
                         f"price_per_1k_completion={price_per_1k_completion}")
    if budget_usd is None:
        return
    if budget_usd != budget_usd or budget_usd < 0:  # NaN or negative
        raise ValueError(f"budget_usd must be >= 0 or unset, got {budget_usd}")
    if budget_usd > 0 and price_per_1k_prompt == 0 and price_per_1k_completion == 0:
        raise ValueError(f"budget_usd={budget_usd:g} needs token prices to count against: set "
                         "--price-per-1k-prompt and/or --price-per-1k-completion (USD per 1,000 tokens)")


class Ledger:
    """Adds billed tokens to a Usage and answers whether the budget still allows a new request.

    Args:
        price_per_1k_prompt: USD per 1,000 prompt tokens.
        price_per_1k_completion: USD per 1,000 completion tokens.
        budget_usd: spending cap; None for no cap. A cap needs at least one non-zero price.
    """

    def __init__(self, price_per_1k_prompt: float, price_per_1k_completion: float, budget_usd: float | None):
        check_budget_prices(budget_usd, price_per_1k_prompt, price_per_1k_completion)
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


class BudgetExhausted(FaultExit):
    """A run stopped at its API budget: what finished is kept (and cached), a rerun resumes."""

    exit_code = EXIT_BUDGET


def budget_stop(usage: Usage | Mapping, budget_usd: float | None) -> BudgetExhausted | None:
    """The stop a command should end with when requests were refused for the budget, else None.

    Commands print its message as their last line and exit with its `exit_code` (EXIT_BUDGET).
    """
    u = usage.as_dict() if isinstance(usage, Usage) else dict(usage or {})
    refused = int(u.get("budget_refused") or 0)
    if not refused:
        return None
    return BudgetExhausted(
        f"stopped at the budget: spent {float(u.get('cost_usd') or 0.0):.6f} of budget_usd={budget_usd} USD; "
        f"{refused} request(s) not sent; rerun with a larger --budget-usd to finish (finished work is kept)")
