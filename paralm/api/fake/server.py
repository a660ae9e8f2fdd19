"""An OpenAI-compatible chat server with scripted replies and seeded faults, for tests and benchmarks.

It lives in the package (not only under tests/) so that benchmarks can start it too; tests import it
through `tests/fake_openai_server.py`. It answers `POST /v1/chat/completions` on 127.0.0.1 only, from a
background thread, and keeps a request log so a test can compare what the client believes it sent and
paid for with what the server actually saw and billed.

Faults are drawn per (request content, attempt number) from a seeded hash, so the same run of requests
meets the same faults whatever the concurrency or timing; a retry of a faulted request is a new attempt
and draws again.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from paralm.api.fake.faults import (
    FAULTS,
    FaultContext,
    Reply,
    count_words,
    echo_reply,
    message_text,
    prompt_word_count,
    send_reply,
    success_payload,
    with_usage,
)

__all__ = ["FAULTS", "FakeOpenAIServer", "count_words", "echo_reply", "message_text", "prompt_word_count"]

HOST = "127.0.0.1"
CHAT_PATH = "/v1/chat/completions"
RETRY_AFTER_FORMATS = ("seconds", "ms", "date")


def _content_hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _uniform(seed: int, content_hash: str, attempt: int) -> float:
    """A number in [0, 1) fixed by (seed, request content, attempt)."""
    digest = hashlib.sha256(f"{seed}:{content_hash}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so pooled clients reuse connections
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid the delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr access logs
        return

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.owner._handle_post(self, self.rfile.read(length))

    def do_GET(self) -> None:
        self.server.owner._handle_get(self)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 drops connections when 32+ clients connect at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out or hang up mid-reply are normal here; anything else is printed."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class FakeOpenAIServer:
    """A local OpenAI-compatible server with scripted replies and seeded fault injection.

    Args:
        reply_fn: `reply_fn(request_json) -> str`, the assistant text for a request (default: echo
            the last message).
        faults: probability per fault name, e.g. `{"429": 0.1, "hang": 0.05}`; names from `FAULTS`;
            probabilities must sum to at most 1.
        seed: seed of the fault draw.
        latency_s: seconds every request waits before it is answered.
        retry_after: seconds announced in the Retry-After header of a 429 (None: no header).
        retry_after_format: "seconds", "ms" (`retry-after-ms`) or "date" (an HTTP date).
        hang_s: how long a `hang` fault holds the connection before closing it unanswered; keep it
            above the client timeout and small enough for tests (shutdown interrupts it).
        fault_attempts: when set, only attempts numbered below it can be faulted (1 = a request's
            first try may fail, its retry always succeeds).
        fault_fn: `fault_fn(request_json, attempt) -> fault name | None`, overrides the seeded draw.
        usage_fn: `usage_fn(request_json, counted_usage) -> usage block | None` replaces the `usage` of
            every normal reply (None: send no usage block), to play a server that mis-reports tokens.

    Attributes:
        log: one dict per request, in arrival order of the answer: path, headers (lower-cased),
            body (parsed JSON), status (None for a hang), fault (None when answered normally),
            attempt (0-based, per identical request body), prompt_tokens and completion_tokens
            (billed; 0 when the reply carried no usage), time (unix time of arrival).
        reply_errors: exceptions raised by `reply_fn` (each answered with HTTP 500).
    """

    def __init__(
        self,
        reply_fn: Callable[[dict], str] | None = None,
        faults: dict[str, float] | None = None,
        seed: int = 0,
        latency_s: float = 0.0,
        retry_after: float | None = 1.0,
        retry_after_format: str = "seconds",
        hang_s: float = 10.0,
        fault_attempts: int | None = None,
        fault_fn: Callable[[dict, int], str | None] | None = None,
        usage_fn: Callable[[dict, dict], Any] | None = None,
    ) -> None:
        self.faults = dict(faults or {})
        unknown = sorted(set(self.faults) - set(FAULTS))
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}; valid: {sorted(FAULTS)}")
        if sum(self.faults.values()) > 1.0 + 1e-9 or any(p < 0 for p in self.faults.values()):
            raise ValueError(f"fault probabilities must be >= 0 and sum to <= 1, got {self.faults}")
        if retry_after_format not in RETRY_AFTER_FORMATS:
            raise ValueError(f"retry_after_format {retry_after_format!r}; valid: {list(RETRY_AFTER_FORMATS)}")
        self.reply_fn = reply_fn or echo_reply
        self.seed, self.latency_s, self.hang_s = seed, latency_s, hang_s
        self.retry_after, self.retry_after_format = retry_after, retry_after_format
        self.fault_attempts, self.fault_fn = fault_attempts, fault_fn
        self.usage_fn = usage_fn
        self.log: list[dict] = []
        self.reply_errors: list[str] = []
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not running; use it as a context manager or call start()")
        return f"http://{HOST}:{self._httpd.server_address[1]}/v1"

    def start(self) -> FakeOpenAIServer:
        self._stop.clear()
        httpd = _Server((HOST, 0), _Handler)
        httpd.owner = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers and close open keep-alive connections."""
        if self._httpd is None:
            return
        self._stop.set()
        self._httpd.shutdown()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what the server saw ---------------------------------------------------------------------
    def billed_tokens(self) -> dict[str, int]:
        """Token totals over every reply that carried a `usage` block (what a real API would bill)."""
        with self._lock:
            prompt = sum(e["prompt_tokens"] for e in self.log)
            completion = sum(e["completion_tokens"] for e in self.log)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def chat_requests(self) -> list[dict]:
        """Log entries for chat-completion requests only."""
        with self._lock:
            return [e for e in self.log if e["path"] == CHAT_PATH]

    def faulted_requests(self) -> list[dict]:
        """Log entries of requests that were answered with an injected fault."""
        return [e for e in self.chat_requests() if e["fault"] is not None]

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    # -- request handling ------------------------------------------------------------------------
    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(conn)

    def _next_attempt(self, content_hash: str) -> int:
        with self._lock:
            attempt = self._attempts.get(content_hash, 0)
            self._attempts[content_hash] = attempt + 1
        return attempt

    def _draw_fault(self, body: dict, content_hash: str, attempt: int) -> str | None:
        if self.fault_fn is not None:
            fault = self.fault_fn(body, attempt)
            if fault is not None and fault not in FAULTS:
                raise ValueError(f"fault_fn returned unknown fault {fault!r}; valid: {sorted(FAULTS)}")
            return fault
        if self.fault_attempts is not None and attempt >= self.fault_attempts:
            return None
        u, cumulative = _uniform(self.seed, content_hash, attempt), 0.0
        for name in sorted(self.faults):
            cumulative += self.faults[name]
            if u < cumulative:
                return name
        return None

    def _retry_after_headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        if self.retry_after_format == "ms":
            return {"retry-after-ms": str(int(self.retry_after * 1000))}
        if self.retry_after_format == "date":
            return {"Retry-After": formatdate(time.time() + self.retry_after, usegmt=True)}
        return {"Retry-After": f"{self.retry_after:g}"}

    def _record(self, handler: _Handler, body: Any, reply: Reply, fault: str | None, attempt: int, t: float) -> None:
        entry = {
            "path": handler.path, "headers": {k.lower(): v for k, v in handler.headers.items()}, "body": body, "status": None if reply.hang else reply.status, "fault": fault, "attempt": attempt,
            "prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens, "time": t,
        }
        with self._lock:
            self.log.append(entry)

    def _handle_post(self, handler: _Handler, raw: bytes) -> None:
        received = time.time()
        if handler.path != CHAT_PATH:
            reply = Reply.error(404, f"no route {handler.path}; this server serves {CHAT_PATH}")
            self._record(handler, None, reply, None, 0, received)
            return send_reply(handler, reply)
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            reply = Reply.error(400, "request body is not JSON")
            self._record(handler, None, reply, None, 0, received)
            return send_reply(handler, reply)
        content_hash = _content_hash(body)
        attempt = self._next_attempt(content_hash)
        fault = self._draw_fault(body, content_hash, attempt)
        if self.latency_s > 0 and self._stop.wait(self.latency_s):
            handler.close_connection = True
            return None
        reply = self._build_reply(body, fault, handler.headers.get("Authorization", ""))
        # Logged before the (possibly hanging) answer, so a client's retry always lands after it.
        self._record(handler, body, reply, fault, attempt, received)
        if reply.hang:
            self._stop.wait(self.hang_s)
            handler.close_connection = True
            return None
        return send_reply(handler, reply)

    def _build_reply(self, body: dict, fault: str | None, authorization: str = "") -> Reply:
        prompt_tokens = prompt_word_count(body)
        model = str(body.get("model", ""))
        if fault is not None:
            ctx = FaultContext(model=model, prompt_tokens=prompt_tokens, retry_headers=self._retry_after_headers(),
                               authorization=authorization)
            return FAULTS[fault](ctx)
        try:
            text = self.reply_fn(body)
        except Exception as exc:  # a broken test script is reported as a 500 and kept for the test to see
            self.reply_errors.append(f"{type(exc).__name__}: {exc}")
            return Reply.error(500, f"reply_fn failed: {type(exc).__name__}")
        reply = success_payload(model, str(text), prompt_tokens, count_words(str(text)))
        if self.usage_fn is not None:
            counted = {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens}
            reply = with_usage(reply, self.usage_fn(body, counted))
        return reply

    def _handle_get(self, handler: _Handler) -> None:
        if handler.path == "/v1/models":
            return send_reply(handler, Reply(200, json.dumps({"object": "list", "data": []}).encode()))
        if handler.path == "/fake/stats":
            stats = {"chat_requests": len(self.chat_requests()), **self.billed_tokens()}
            return send_reply(handler, Reply(200, json.dumps(stats).encode()))
        return send_reply(handler, Reply.error(404, f"no route {handler.path}"))
