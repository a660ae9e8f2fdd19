"""Configuration, request and result types of the chat client (re-exported by `paralm.api.client`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paralm.api.accounting import check_budget_prices


@dataclass
class ClientConfig:
    """Where and how to call an OpenAI-compatible chat endpoint.

    Args:
        base_url: endpoint root, e.g. "http://127.0.0.1:8000/v1" (vLLM, `transformers serve`) or
            "https://api.openai.com/v1".
        model: model name sent with every request; part of the cache key.
        api_key_env: name of the environment variable holding the key (the key itself is never a
            config value); when unset, "EMPTY" is sent, which local servers accept.
        concurrency: requests in flight at once.
        timeout_s: seconds one attempt may take before it counts as a timeout.
        max_retries: extra attempts after the first for retryable failures (429, 5xx, timeouts,
            connection errors, unusable replies).
        backoff_base_s: first backoff ceiling in seconds; doubles per retry (jittered).
        backoff_max_s: largest backoff ceiling in seconds.
        retry_after_cap_s: longest server-requested Retry-After honoured; a longer one fails the
            request at once with reason "retry_after_too_long".
        cache_path: SQLite file of finished results (None: no cache across calls).
        budget_usd: stop sending new requests once this much is spent (None: no cap); requests
            already in flight still finish, so spending can pass the cap by at most `concurrency`
            replies. A budget needs a non-zero price (else it could never trip).
        price_per_1k_prompt: USD per 1,000 prompt tokens, for cost accounting.
        price_per_1k_completion: USD per 1,000 completion tokens, for cost accounting.
    """

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    retry_after_cap_s: float = 30.0
    cache_path: str | None = None
    budget_usd: float | None = None
    price_per_1k_prompt: float = 0.0
    price_per_1k_completion: float = 0.0

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        if not self.model:
            raise ValueError("model must be a non-empty model name")
        checks = {
            "concurrency": self.concurrency >= 1,
            "timeout_s": self.timeout_s > 0,
            "max_retries": self.max_retries >= 0,
            "backoff_base_s": self.backoff_base_s >= 0,
            "backoff_max_s": self.backoff_max_s >= 0,
            "retry_after_cap_s": self.retry_after_cap_s >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid ClientConfig field(s) {bad}: concurrency >= 1, timeout_s > 0, others >= 0")
        check_budget_prices(self.budget_usd, self.price_per_1k_prompt, self.price_per_1k_completion)


def client_default(name: str) -> Any:
    """The default of ClientConfig's field `name`, for commands whose flags show it (declared only here)."""
    return ClientConfig.__dataclass_fields__[name].default


@dataclass
class ChatRequest:
    """One chat completion to ask for.

    Args:
        messages: OpenAI chat messages, e.g. [{"role": "user", "content": "..."}].
        temperature: sampling temperature. Requests with temperature > 0 are still cached: the cache
            keeps one answer per `sample_index`, so ask with sample_index 0, 1, 2... for new samples.
        max_tokens: completion length cap (None: the server's default).
        response_format: passed to the server as is, e.g. {"type": "json_object"}. The client does
            not judge the content by it (many servers wrap JSON in code fences or ignore the field;
            callers parse robustly): use `require_json` for that.
        seed: sampling seed passed to the server.
        sample_index: which sample of this exact request this is; part of the cache key.
        tag: free text for logs and error messages.
        input_hash: the caller's hash of the item the request is about; part of the cache key.
        top_p: nucleus sampling parameter (None: the server's default).
        require_json: when True, a reply whose content is not JSON (a surrounding ``` code fence is
            allowed) is a bad response and is retried like any other unusable reply.
    """

    messages: list[dict]
    temperature: float = 0.0
    max_tokens: int | None = None
    response_format: dict | None = None
    seed: int | None = None
    sample_index: int = 0
    tag: str = ""
    input_hash: str = ""
    top_p: float | None = None
    require_json: bool = False

    def key_fields(self, model: str) -> dict[str, Any]:
        """Everything that decides the answer, for the cache key (the tag is only a label)."""
        fields = {
            "model": model, "messages": self.messages, "temperature": self.temperature, "top_p": self.top_p,
            "max_tokens": self.max_tokens, "response_format": self.response_format, "seed": self.seed,
            "sample_index": self.sample_index, "input_hash": self.input_hash,
        }
        if self.require_json:  # what was accepted differs, so the answer may too
            fields["require_json"] = True
        return fields

    def api_params(self) -> dict[str, Any]:
        """Keyword arguments for `chat.completions.create`, leaving out what the caller left unset."""
        params: dict[str, Any] = {"messages": self.messages, "temperature": self.temperature}
        optional = {"max_tokens": self.max_tokens, "response_format": self.response_format,
                    "seed": self.seed, "top_p": self.top_p}
        params.update({k: v for k, v in optional.items() if v is not None})
        return params


@dataclass
class ChatResult:
    """A finished completion.

    Args:
        text: the assistant message content.
        prompt_tokens: prompt tokens the server billed for the reply.
        completion_tokens: completion tokens the server billed for the reply.
        cached: True when nothing was sent for this call (cache hit, or it shared an identical
            request that was already in flight).
        attempts: HTTP attempts this call made (0 when cached).
        model: the model that answered, as the server named it.
        finish_reason: the server's finish reason ("stop", "length", ...), if given.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool
    attempts: int
    model: str
    finish_reason: str | None = field(default=None)
