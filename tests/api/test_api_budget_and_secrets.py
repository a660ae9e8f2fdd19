"""Budget cap, cost accounting, and the API key staying out of caches, reprs and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAIServer

from paralm.api.client import ApiError, ChatClient, ChatRequest, ChatResult, ClientConfig
from paralm.api.errors import REASONS

SECRET = "sk-test-9f8e7d6c5b4a-never-log-me"


def ask(text: str) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}])


def test_budget_cap_stops_new_requests_and_keeps_finished_ones(tmp_path):
    db = tmp_path / "c.sqlite"
    # 4 words in, 4 words echoed back: 4 prompt + 4 completion tokens = 4 + 2 = 6 USD per request
    reqs = [ask(f"tell me item {i}") for i in range(5)]
    prices = dict(price_per_1k_prompt=1000.0, price_per_1k_completion=500.0)
    with FakeOpenAIServer() as server:
        cfg = ClientConfig(base_url=server.base_url, model="m", concurrency=1, cache_path=str(db),
                           budget_usd=15.0, **prices)
        client = ChatClient(cfg)
        results = client.run_many(reqs)
        assert len(server.chat_requests()) == 3
        # A new budget later: finished results come from the cache, only the rest are sent.
        rerun = ChatClient(ClientConfig(base_url=server.base_url, model="m", cache_path=str(db), **prices))
        again = rerun.run_many(reqs)
        assert len(server.chat_requests()) == 5
    assert [type(r).__name__ for r in results] == ["ChatResult"] * 3 + ["ApiError"] * 2
    assert all(r.reason == "budget_exceeded" and r.attempts == 0 for r in results[3:])
    assert client.usage.cost_usd == pytest.approx(18.0) and client.usage.errors == 2
    assert [r.cached for r in again] == [True, True, True, False, False]
    assert rerun.usage.cost_usd == pytest.approx(12.0)


def test_cache_hits_are_served_when_the_budget_is_spent(tmp_path):
    db = tmp_path / "c.sqlite"
    with FakeOpenAIServer() as server:
        base = dict(base_url=server.base_url, model="m", cache_path=str(db))
        ChatClient(ClientConfig(**base)).run_many([ask("already paid for")])
        broke = ChatClient(ClientConfig(**base, budget_usd=0.0))
        hit, miss = broke.run_many([ask("already paid for"), ask("new")])
        assert len(server.chat_requests()) == 1
    assert isinstance(hit, ChatResult) and hit.cached
    assert isinstance(miss, ApiError) and miss.reason == "budget_exceeded"


def test_api_key_from_the_environment_is_sent_but_never_stored_or_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("PARALM_TEST_API_KEY", SECRET)
    cache_dir = tmp_path / "cache"
    with FakeOpenAIServer(fault_fn=lambda body, attempt: "401" if "refuse" in str(body) else None) as server:
        cfg = ClientConfig(base_url=server.base_url, model="m", api_key_env="PARALM_TEST_API_KEY",
                           cache_path=str(cache_dir / "c.sqlite"))
        client = ChatClient(cfg)
        ok, refused = client.run_many([ask("hello"), ask("refuse me")])
        assert server.chat_requests()[0]["headers"]["authorization"] == f"Bearer {SECRET}"
    assert isinstance(ok, ChatResult) and isinstance(refused, ApiError) and refused.reason == "auth"
    shown = [repr(cfg), str(cfg), repr(client), str(client), str(refused), repr(refused), str(client.usage)]
    assert not any(SECRET in text for text in shown)
    client.close_cache()
    files = list(cache_dir.iterdir())
    assert files and not any(SECRET.encode() in Path(f).read_bytes() for f in files)


def test_missing_key_variable_sends_the_empty_placeholder(monkeypatch):
    monkeypatch.delenv("PARALM_TEST_ABSENT_KEY", raising=False)
    with FakeOpenAIServer() as server:
        cfg = ClientConfig(base_url=server.base_url, model="m", api_key_env="PARALM_TEST_ABSENT_KEY")
        assert isinstance(ChatClient(cfg).run_many([ask("local")])[0], ChatResult)
        assert server.chat_requests()[0]["headers"]["authorization"] == "Bearer EMPTY"


def test_error_message_is_one_line_with_reason_tag_and_attempts():
    err = ApiError("server_error", "HTTP 503:\nservice\nunavailable", attempts=4, tag="utt0007")
    assert "\n" not in str(err)
    assert str(err).startswith("server_error [utt0007]:") and "4 attempt" in str(err)


def test_unknown_error_reason_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid") as info:
        ApiError("oops")
    assert all(reason in str(info.value) for reason in REASONS)


@pytest.mark.parametrize(
    ("field", "value"),
    [("concurrency", 0), ("timeout_s", 0), ("max_retries", -1), ("base_url", "127.0.0.1:8000"), ("model", "")],
)
def test_invalid_config_is_refused_with_the_field_named(field, value):
    fields = {"base_url": "http://127.0.0.1:8000/v1", "model": "m", field: value}
    with pytest.raises(ValueError, match=field):
        ClientConfig(**fields)
