"""The replies and injected faults of the fake OpenAI-compatible server (`paralm.api.fake.server`).

Token counts are words (whitespace-split) so tests can compute what the server bills by hand.

Each fault is a small function in the `FAULTS` registry that builds the HTTP reply a misbehaving
server would send. Faults that still return a well-formed completion (`garbage`, `schema_invalid`,
`empty`) carry a `usage` block and are billed, as a real API bills them; transport-level faults
(status errors, `malformed`, `hang`) carry no usage and bill nothing.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

_ids = itertools.count()


@dataclass
class Reply:
    """One HTTP answer: status, body bytes, extra headers, and the tokens it bills."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    hang: bool = False

    @classmethod
    def error(cls, status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
        payload = {"error": {"message": message, "type": "fake_server_error", "code": status}}
        return cls(status, json.dumps(payload).encode(), dict(headers or {}))


@dataclass(frozen=True)
class FaultContext:
    """What a fault needs to know about the request it spoils."""

    model: str
    prompt_tokens: int
    retry_headers: dict[str, str]
    authorization: str = ""  # the request's Authorization header, for servers that quote the key back


def count_words(text: str) -> int:
    """The server's deterministic stand-in for a tokenizer: whitespace-separated words."""
    return len(text.split())


def message_text(message: dict) -> str:
    """Text of one chat message, whether `content` is a string or a list of typed parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def prompt_word_count(body: dict) -> int:
    """Prompt tokens as the fake server bills them: words over all messages."""
    return sum(count_words(message_text(m)) for m in body.get("messages", []) if isinstance(m, dict))


def echo_reply(body: dict) -> str:
    """Default reply: the text of the last message."""
    messages = body.get("messages") or [{}]
    return message_text(messages[-1])


def success_payload(model: str, text: str, prompt_tokens: int, completion_tokens: int) -> Reply:
    """A well-formed chat completion with a `usage` block."""
    payload = {
        "id": f"chatcmpl-fake-{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    return Reply(200, json.dumps(payload).encode(), prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


def with_usage(reply: Reply, usage: Any) -> Reply:
    """`reply` (a success payload) with its `usage` block replaced by `usage` (None: no usage block), as a
    server that under- or mis-reports tokens would send it; the log bills what the new block says."""
    payload = json.loads(reply.body)
    payload.pop("usage", None)
    if usage is not None:
        payload["usage"] = usage

    def billed(name: str) -> int:
        value = usage.get(name) if isinstance(usage, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    return Reply(200, json.dumps(payload).encode(), prompt_tokens=billed("prompt_tokens"),
                 completion_tokens=billed("completion_tokens"))


def send_reply(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
    """Write `reply` on the handler's connection (keep-alive stays open)."""
    handler.send_response(reply.status)
    handler.send_header("Content-Type", reply.content_type)
    handler.send_header("Content-Length", str(len(reply.body)))
    for name, value in reply.headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(reply.body)


def _status(code: int, message: str) -> Callable[[FaultContext], Reply]:
    return lambda ctx: Reply.error(code, message)


def _rate_limited(ctx: FaultContext) -> Reply:
    return Reply.error(429, "rate limit reached (injected)", ctx.retry_headers)


def _text_content(text: str) -> Callable[[FaultContext], Reply]:
    """A billed, well-formed completion whose content is `text`."""
    return lambda ctx: success_payload(ctx.model, text, ctx.prompt_tokens, len(text.split()))


def _malformed(ctx: FaultContext) -> Reply:
    """HTTP 200 whose body is not an OpenAI response at all."""
    return Reply(200, b"<html><body>502 upstream proxy glitch</body></html>", content_type="text/html")


def _truncated_json(ctx: FaultContext) -> Reply:
    """HTTP 200 with a JSON body cut off half-way."""
    return Reply(200, b'{"id": "chatcmpl-cut", "choices": [{"index": 0, "mess')


def _auth_echo(ctx: FaultContext) -> Reply:
    """HTTP 401 whose message quotes the key it refused, as some real APIs do."""
    key = ctx.authorization.removeprefix("Bearer ").strip()
    return Reply.error(401, f"Incorrect API key provided: {key}. You can find your API key in your account.")


def _hang(ctx: FaultContext) -> Reply:
    return Reply(0, hang=True)


FAULTS: dict[str, Callable[[FaultContext], Reply]] = {
    "429": _rate_limited,
    "500": _status(500, "internal server error (injected)"),
    "502": _status(502, "bad gateway (injected)"),
    "503": _status(503, "service unavailable (injected)"),
    "504": _status(504, "gateway timeout (injected)"),
    "400": _status(400, "bad request (injected)"),
    "401": _status(401, "invalid api key (injected)"),
    "401_echo": _auth_echo,
    "hang": _hang,
    "garbage": _text_content("Sure!! here is my answer ::: <<not json>> rating maybe"),
    "schema_invalid": _text_content('{"foo": 1}'),
    "empty": _text_content(""),
    "malformed": _malformed,
    "truncated": _truncated_json,
}
