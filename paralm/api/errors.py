"""The one error the API client raises, with a reason a caller can count and report.

Callers (QA generation, the judge) list failed items by `reason` instead of turning a failure into a
default value, so the reasons are a closed set and the message is one line that never holds a secret.
"""

from __future__ import annotations

REASONS: dict[str, str] = {
    "timeout": "the server did not answer within the per-request timeout",
    "rate_limited": "HTTP 429 on every attempt",
    "server_error": "HTTP 5xx on every attempt",
    "retry_after_too_long": "the server asked to wait longer than retry_after_cap_s",
    "budget_exceeded": "the configured budget_usd is spent; no new requests are sent",
    "bad_request": "the server refused the request (HTTP 400/404/422...); retrying cannot help",
    "auth": "the server refused the credentials (HTTP 401/403)",
    "connection": "the server could not be reached",
    "bad_response": "the reply was not a usable chat completion (unparseable, empty, or not the JSON asked for)",
}

RETRYABLE = frozenset({"timeout", "rate_limited", "server_error", "connection", "bad_response"})


class ApiError(Exception):
    """A request that ended without a result.

    Attributes:
        reason: one of `REASONS`.
        attempts: HTTP attempts made for this request (0 when none was sent).
        detail: a short explanation (status code, server message, parse error).
        tag: the request's free-text tag, for logs.
    """

    def __init__(self, reason: str, detail: str = "", attempts: int = 0, tag: str = "") -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown ApiError reason {reason!r}; valid: {sorted(REASONS)}")
        self.reason, self.detail, self.attempts, self.tag = reason, detail, attempts, tag
        super().__init__(self._line())

    def _line(self) -> str:
        where = f" [{self.tag}]" if self.tag else ""
        detail = " ".join(self.detail.split())[:300] or REASONS[self.reason]
        return f"{self.reason}{where}: {detail} (after {self.attempts} attempt(s))"

    @property
    def retryable(self) -> bool:
        return self.reason in RETRYABLE

    def with_attempts(self, attempts: int, tag: str) -> ApiError:
        """The same failure, stamped with the final attempt count and the request's tag."""
        return ApiError(self.reason, self.detail, attempts, tag)

    def __reduce__(self):  # picklable across processes despite the custom signature
        return (ApiError, (self.reason, self.detail, self.attempts, self.tag))
