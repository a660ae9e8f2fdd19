"""One HTTP attempt through `openai.AsyncOpenAI`, and the reading of its reply.

The openai client is used with its own retries off (`max_retries=0`) so that every attempt, wait and
failure is counted here. Its raw response is read and checked by hand: a server that answers 200 with
HTML, truncated JSON or an empty message is a failed attempt ("bad_response"), not a crash later on.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from typing import Any

import openai

from paralm.api.chat_types import ChatRequest, ChatResult
from paralm.api.retry import parse_retry_after

# openai >= 3 transports over httpx2, older releases over httpx: take `Limits` from whichever
# library its default client is built on, so the pool settings always match the client.
_http = importlib.import_module(openai.DefaultAsyncHttpxClient.__mro__[1].__module__.split(".")[0])

_STATUS_REASONS = {429: "rate_limited", 401: "auth", 403: "auth"}


class AttemptFailed(Exception):
    """One attempt failed; `reason` is an ApiError reason, `retry_after_s` the server's hint."""

    def __init__(self, reason: str, detail: str, retry_after_s: float | None = None) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.retry_after_s = reason, detail, retry_after_s


def make_openai_client(base_url: str, api_key: str, concurrency: int, timeout_s: float) -> openai.AsyncOpenAI:
    """An AsyncOpenAI with retries off and a pooled HTTP client sized to the concurrency."""
    limits = _http.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    http_client = openai.DefaultAsyncHttpxClient(limits=limits, timeout=timeout_s)
    return openai.AsyncOpenAI(
        base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout_s, http_client=http_client
    )


def _status_reason(status: int) -> str:
    if status in _STATUS_REASONS:
        return _STATUS_REASONS[status]
    return "server_error" if status >= 500 else "bad_request"


async def send_once(client: openai.AsyncOpenAI, model: str, req: ChatRequest, timeout_s: float) -> bytes:
    """POST one chat completion; return the raw body of a 2xx reply or raise AttemptFailed."""
    # `post` with a raw-response cast is the openai client's documented route for arbitrary bodies: it
    # keeps auth, base URL and status-error mapping, and skips the typed re-validation of `messages`
    # (a large share of per-request CPU at high concurrency, and nothing an OpenAI-compatible server needs).
    try:
        reply = await asyncio.wait_for(
            client.post("/chat/completions", body={"model": model, **req.api_params()}, cast_to=_http.Response),
            timeout=timeout_s,
        )
    except (asyncio.TimeoutError, openai.APITimeoutError) as exc:
        raise AttemptFailed("timeout", f"no reply within {timeout_s:g}s") from exc
    except openai.APIConnectionError as exc:
        raise AttemptFailed("connection", f"{type(exc).__name__}: {exc}") from exc
    except openai.APIStatusError as exc:
        hint = parse_retry_after(dict(exc.response.headers))
        raise AttemptFailed(_status_reason(exc.status_code), f"HTTP {exc.status_code}: {exc.message}", hint) from exc
    return reply.content


def decode_payload(body: bytes) -> dict[str, Any]:
    """The reply body as a JSON object, or AttemptFailed("bad_response")."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        preview = body[:80].decode("utf-8", "replace")
        raise AttemptFailed("bad_response", f"reply body is not JSON: {preview!r}") from exc
    if not isinstance(payload, dict):
        raise AttemptFailed("bad_response", f"reply body is JSON {type(payload).__name__}, not an object")
    return payload


def is_json_text(content: str) -> bool:
    """True when `content` is JSON, bare or inside one ``` / ```json code fence."""
    text = content.strip()
    if text.startswith("```") and text.endswith("```") and len(text) >= 6:
        text = text[3:-3]
        text = text[4:] if text.startswith("json") else text
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def read_result(payload: dict[str, Any], req: ChatRequest, attempts: int, default_model: str,
                tokens: tuple[int, int]) -> ChatResult:
    """The ChatResult in a decoded reply, or AttemptFailed("bad_response") when it holds no usable text.

    `tokens` are the (prompt, completion) tokens billed for it, as `usage_check.checked_tokens` vetted them.
    """
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise AttemptFailed("bad_response", "reply has no choices")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str) or not content.strip():
        raise AttemptFailed("bad_response", "reply message content is empty")
    if req.require_json and not is_json_text(content):
        raise AttemptFailed("bad_response", f"content is not the JSON asked for: {content[:60]!r}")
    prompt_tokens, completion_tokens = tokens
    return ChatResult(
        text=content,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached=False,
        attempts=attempts,
        model=str(payload.get("model") or default_model),
        finish_reason=choices[0].get("finish_reason"),
    )
