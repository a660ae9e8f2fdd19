"""Retries, Retry-After, timeouts and unusable replies of the chat client, against the fake server."""

from __future__ import annotations

import socket
import time

import pytest
from fake_openai_server import FakeOpenAIServer

from paralm.api.client import ApiError, ChatClient, ChatRequest, ChatResult, ClientConfig


def config(server: FakeOpenAIServer | None = None, **overrides) -> ClientConfig:
    fields = dict(base_url=server.base_url if server else "http://127.0.0.1:9/v1", model="judge-test",
                  concurrency=4, timeout_s=5.0, max_retries=3, backoff_base_s=0.01, backoff_max_s=0.05)
    fields.update(overrides)
    return ClientConfig(**fields)


def ask(text: str, **kw) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], **kw)


def first_attempt(fault: str):
    """fault_fn: the first try of every request gets `fault`, retries are answered normally."""
    return lambda body, attempt: fault if attempt == 0 else None


def always(fault: str):
    return lambda body, attempt: fault


def run_one(cfg: ClientConfig, req: ChatRequest) -> ChatResult | ApiError:
    return ChatClient(cfg).run_many([req])[0]


def test_retry_after_of_two_seconds_is_waited_for():
    with FakeOpenAIServer(fault_fn=first_attempt("429"), retry_after=2) as server:
        start = time.monotonic()
        result = run_one(config(server), ask("wait for me"))
        elapsed = time.monotonic() - start
    assert isinstance(result, ChatResult) and result.text == "wait for me"
    assert result.attempts == 2
    assert elapsed >= 2.0
    gap = server.chat_requests()[1]["time"] - server.chat_requests()[0]["time"]
    assert gap >= 2.0


def test_retry_after_in_milliseconds_header_is_honoured():
    with FakeOpenAIServer(fault_fn=first_attempt("429"), retry_after=0.4, retry_after_format="ms") as server:
        start = time.monotonic()
        result = run_one(config(server), ask("ms please"))
        elapsed = time.monotonic() - start
    assert isinstance(result, ChatResult) and elapsed >= 0.4


def test_retry_after_over_the_cap_fails_fast():
    with FakeOpenAIServer(fault_fn=always("429"), retry_after=60) as server:
        start = time.monotonic()
        result = run_one(config(server, retry_after_cap_s=5.0), ask("too slow"))
        elapsed = time.monotonic() - start
    assert isinstance(result, ApiError)
    assert result.reason == "retry_after_too_long" and result.attempts == 1
    assert elapsed < 1.0
    assert len(server.chat_requests()) == 1


@pytest.mark.parametrize("fault", ["500", "502", "503", "504"])
def test_server_errors_are_retried_until_success(fault):
    with FakeOpenAIServer(fault_fn=lambda body, attempt: fault if attempt < 2 else None) as server:
        client = ChatClient(config(server))
        result = client.run_many([ask("flaky")])[0]
    assert isinstance(result, ChatResult) and result.attempts == 3
    assert client.usage.retries == 2 and client.usage.failed_attempts == 2
    assert [e["status"] for e in server.chat_requests()] == [int(fault), int(fault), 200]


def test_persistent_server_error_ends_as_server_error_after_all_attempts():
    with FakeOpenAIServer(fault_fn=always("503")) as server:
        result = run_one(config(server, max_retries=2), ask("down"))
    assert isinstance(result, ApiError) and result.reason == "server_error" and result.attempts == 3
    assert len(server.chat_requests()) == 3


def test_hang_past_the_timeout_is_retried():
    with FakeOpenAIServer(fault_fn=first_attempt("hang"), hang_s=3.0) as server:
        start = time.monotonic()
        result = run_one(config(server, timeout_s=0.3), ask("are you there"))
        elapsed = time.monotonic() - start
    assert isinstance(result, ChatResult) and result.attempts == 2
    assert 0.3 <= elapsed < 2.5


def test_hang_on_every_attempt_ends_as_timeout():
    with FakeOpenAIServer(fault_fn=always("hang"), hang_s=3.0) as server:
        result = run_one(config(server, timeout_s=0.25, max_retries=1), ask("silence"))
    assert isinstance(result, ApiError) and result.reason == "timeout" and result.attempts == 2


def test_server_shutdown_interrupts_a_hanging_request():
    server = FakeOpenAIServer(fault_fn=always("hang"), hang_s=30.0).start()
    run_one(config(server, timeout_s=0.2, max_retries=0), ask("hold"))
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize("fault", ["malformed", "truncated", "empty"])
def test_unusable_reply_bodies_are_bad_responses(fault):
    with FakeOpenAIServer(fault_fn=always(fault)) as server:
        result = run_one(config(server, max_retries=1), ask("body please"))
    assert isinstance(result, ApiError) and result.reason == "bad_response" and result.attempts == 2


def test_garbage_text_is_a_bad_response_when_json_is_required():
    with FakeOpenAIServer(fault_fn=always("garbage")) as server:
        result = run_one(config(server, max_retries=1), ask("json please", require_json=True))
    assert isinstance(result, ApiError) and result.reason == "bad_response"


def test_garbage_text_is_returned_when_json_is_not_required():
    with FakeOpenAIServer(fault_fn=always("garbage")) as server:
        result = run_one(config(server), ask("anything", response_format={"type": "json_object"}))
    assert isinstance(result, ChatResult) and "not json" in result.text


def test_required_json_may_come_inside_a_code_fence():
    with FakeOpenAIServer(reply_fn=lambda body: '```json\n{"rating": 3}\n```') as server:
        result = run_one(config(server), ask("fenced", require_json=True))
    assert isinstance(result, ChatResult) and result.attempts == 1


def test_schema_invalid_json_reaches_the_caller_unchanged():
    with FakeOpenAIServer(fault_fn=always("schema_invalid")) as server:
        result = run_one(config(server), ask("schema", require_json=True))
    assert isinstance(result, ChatResult) and result.text == '{"foo": 1}'


@pytest.mark.parametrize(("fault", "reason"), [("400", "bad_request"), ("401", "auth")])
def test_client_errors_are_not_retried(fault, reason):
    with FakeOpenAIServer(fault_fn=always(fault)) as server:
        result = run_one(config(server), ask("refused"))
    assert isinstance(result, ApiError) and result.reason == reason and result.attempts == 1
    assert len(server.chat_requests()) == 1


def test_unreachable_server_is_a_connection_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_one(config(base_url=f"http://127.0.0.1:{port}/v1", max_retries=1), ask("anyone"))
    assert isinstance(result, ApiError) and result.reason == "connection" and result.attempts == 2


def test_tokens_and_retries_match_the_server_log_under_random_faults():
    faults = {"429": 0.15, "500": 0.1, "503": 0.1, "malformed": 0.1, "garbage": 0.1, "empty": 0.05}
    reqs = [ask(f"item {i} says something short", require_json=False, tag=f"i{i}") for i in range(60)]
    # Faults only hit a request's first three tries, so with max_retries=3 every request succeeds.
    with FakeOpenAIServer(faults=faults, seed=7, retry_after=0.01, fault_attempts=3,
                          reply_fn=lambda b: '{"ok": true}') as server:
        client = ChatClient(config(server, concurrency=8, max_retries=3))
        results = client.run_many([ChatRequest(r.messages, require_json=True, tag=r.tag) for r in reqs])
    assert all(isinstance(r, ChatResult) for r in results)
    faulted = server.faulted_requests()
    assert len(faulted) > 20  # the seeded draw really exercised the retry path
    assert client.usage.retries == len(faulted) == client.usage.failed_attempts
    assert client.usage.requests_sent == len(server.chat_requests())
    billed = server.billed_tokens()
    assert client.usage.prompt_tokens == billed["prompt_tokens"]
    assert client.usage.completion_tokens == billed["completion_tokens"]
    # garbage and empty replies were billed by the server and counted by the client
    assert any(e["fault"] == "garbage" and e["completion_tokens"] > 0 for e in faulted)


def test_results_keep_input_order_and_progress_reaches_total():
    seen: list[tuple[int, int]] = []
    with FakeOpenAIServer(latency_s=0.01) as server:
        client = ChatClient(config(server, concurrency=5))
        results = client.run_many([ask(f"number {i}") for i in range(25)], progress=lambda d, t: seen.append((d, t)))
    assert [r.text for r in results] == [f"number {i}" for i in range(25)]
    assert [d for d, _ in seen] == list(range(1, 26)) and seen[-1] == (25, 25)


def test_concurrency_bound_is_respected():
    with FakeOpenAIServer(latency_s=0.2) as server:
        ChatClient(config(server, concurrency=3)).run_many([ask(f"slow {i}") for i in range(6)])
    arrivals = sorted(e["time"] for e in server.chat_requests())
    # two waves of three: the fourth request can only start after a first one finished
    assert arrivals[3] - arrivals[0] >= 0.18
    assert arrivals[2] - arrivals[0] < 0.15
