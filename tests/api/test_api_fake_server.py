"""The fake OpenAI-compatible server itself, and the retry timing helpers."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
from email.utils import formatdate
from pathlib import Path

import pytest
from fake_openai_server import FAULTS, FakeOpenAIServer, FakeServerProcess

from paralm.api.retry import backoff_delay, parse_retry_after


def post(base_url: str, body: dict | bytes) -> tuple[int, dict, bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"{base_url}/chat/completions", data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def chat(text: str, **extra) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


def test_echo_reply_carries_word_count_usage():
    with FakeOpenAIServer() as server:
        status, _, body = post(server.base_url, chat("three little words"))
    payload = json.loads(body)
    assert status == 200 and payload["choices"][0]["message"]["content"] == "three little words"
    assert payload["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    assert server.billed_tokens() == payload["usage"]


def test_listens_on_loopback_only():
    with FakeOpenAIServer() as server:
        assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
        assert server._httpd.server_address[0] == "127.0.0.1"


def _fault_sequence(seed: int) -> list[str | None]:
    with FakeOpenAIServer(faults={"429": 0.3, "500": 0.2, "garbage": 0.1}, seed=seed, retry_after=0) as server:
        for i in range(40):
            post(server.base_url, chat(f"request {i}"))
            post(server.base_url, chat(f"request {i}"))  # a second attempt of the same request
    return [(e["body"]["messages"][0]["content"], e["attempt"], e["fault"]) for e in server.log]


def test_faults_are_deterministic_per_request_and_attempt_given_the_seed():
    first, again, other = _fault_sequence(1), _fault_sequence(1), _fault_sequence(2)
    assert first == again and first != other
    faults = [f for _, _, f in first]
    assert 0.4 < sum(f is not None for f in faults) / len(faults) < 0.8
    assert {a for _, a, _ in first} == {0, 1}


def test_429_announces_retry_after_in_each_format():
    for fmt, header in [("seconds", "Retry-After"), ("ms", "retry-after-ms"), ("date", "Retry-After")]:
        with FakeOpenAIServer(faults={"429": 1.0}, retry_after=3, retry_after_format=fmt) as server:
            status, headers, _ = post(server.base_url, chat("x"))
        value = {k.lower(): v for k, v in headers.items()}[header.lower()]
        assert status == 429 and 2.0 <= parse_retry_after({header: value}) <= 3.0


@pytest.mark.parametrize("fault", ["malformed", "truncated"])
def test_malformed_bodies_are_not_openai_responses(fault):
    with FakeOpenAIServer(faults={fault: 1.0}) as server:
        status, _, body = post(server.base_url, chat("x"))
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(body)
    assert server.billed_tokens()["total_tokens"] == 0


def test_schema_invalid_and_garbage_are_billed_completions():
    with FakeOpenAIServer(fault_fn=lambda body, attempt: body["messages"][0]["content"]) as server:
        _, _, schema = post(server.base_url, chat("schema_invalid"))
        _, _, garbage = post(server.base_url, chat("garbage"))
    assert json.loads(json.loads(schema)["choices"][0]["message"]["content"]) == {"foo": 1}
    with pytest.raises(ValueError):
        json.loads(json.loads(garbage)["choices"][0]["message"]["content"])
    assert all(e["prompt_tokens"] == 1 for e in server.log)


def test_response_format_is_recorded():
    with FakeOpenAIServer() as server:
        post(server.base_url, chat("x", response_format={"type": "json_object"}))
    assert server.log[0]["body"]["response_format"] == {"type": "json_object"}


def test_broken_reply_script_answers_500_and_is_reported():
    with FakeOpenAIServer(reply_fn=lambda body: 1 / 0) as server:
        status, _, _ = post(server.base_url, chat("x"))
    assert status == 500 and server.reply_errors == ["ZeroDivisionError: division by zero"]


def test_unknown_fault_and_bad_probabilities_are_refused():
    with pytest.raises(ValueError, match="valid"):
        FakeOpenAIServer(faults={"418": 0.1})
    with pytest.raises(ValueError, match="sum"):
        FakeOpenAIServer(faults={"429": 0.7, "500": 0.7})
    assert {"429", "500", "503", "hang", "garbage", "schema_invalid", "malformed"} <= set(FAULTS)


def test_latency_delays_each_answer():
    with FakeOpenAIServer(latency_s=0.15) as server:
        start = time.monotonic()
        post(server.base_url, chat("slow"))
    assert time.monotonic() - start >= 0.15


def test_server_process_serves_and_reports_stats():
    with FakeServerProcess(latency_s=0.0) as server:
        post(server.base_url, chat("one two"))
        assert server.stats() == {"chat_requests": 1, "prompt_tokens": 2, "completion_tokens": 2,
                                  "total_tokens": 4}


def test_retry_after_parsing_accepts_seconds_milliseconds_and_dates():
    now = time.time()
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"Retry-After-Ms": "1500"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert 9.0 <= parse_retry_after({"retry-after": formatdate(now + 10, usegmt=True)}, now=now) <= 10.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None and parse_retry_after(None) is None


def test_backoff_grows_with_jitter_and_stays_under_the_ceiling():
    rng = random.Random(0)
    delays = {a: [backoff_delay(a, 0.5, 4.0, rng) for _ in range(200)] for a in (1, 2, 3, 6)}
    assert all(0.25 <= d <= 0.5 for d in delays[1])
    assert all(0.5 <= d <= 1.0 for d in delays[2])
    assert all(2.0 <= d <= 4.0 for d in delays[6])  # capped at backoff_max_s
    assert len({round(d, 6) for d in delays[3]}) > 100  # jittered, not lockstep


def test_api_package_never_imports_torch():
    code = ("import sys, paralm.api.client, paralm.api.bench, paralm.api.testing, paralm.api.serve_fake; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
