"""The result cache: hits send nothing, every answer-deciding field misses, duplicates share one request,
and a process killed mid-run leaves a readable database of complete rows."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAIServer

from paralm.api.cache import CachedReply, ResultCache, cache_key
from paralm.api.client import ChatClient, ChatRequest, ChatResult, ClientConfig

ROOT = Path(__file__).resolve().parents[2]


def config(server: FakeOpenAIServer, cache: Path | None, **overrides) -> ClientConfig:
    fields = dict(base_url=server.base_url, model="m1", concurrency=4, timeout_s=5.0, backoff_base_s=0.01,
                  cache_path=str(cache) if cache else None)
    fields.update(overrides)
    return ClientConfig(**fields)


def ask(text: str, **kw) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], **kw)


def sent(server: FakeOpenAIServer) -> int:
    return len(server.chat_requests())


def test_identical_request_is_answered_from_the_cache(tmp_path):
    db = tmp_path / "c.sqlite"
    with FakeOpenAIServer() as server:
        first = ChatClient(config(server, db)).run_many([ask("hello there")])[0]
        log_before = list(server.log)
        again = ChatClient(config(server, db))
        second = again.run_many([ask("hello there")])[0]
        assert server.log == log_before
    assert isinstance(first, ChatResult) and not first.cached
    assert second.cached and second.attempts == 0 and second.text == first.text
    assert (second.prompt_tokens, second.completion_tokens) == (first.prompt_tokens, first.completion_tokens)
    assert again.usage.cache_hits == 1 and again.usage.requests_sent == 0 and again.usage.prompt_tokens == 0


@pytest.mark.parametrize(
    ("client_change", "request_change"),
    [
        ({"model": "m2"}, {}),
        ({}, {"messages": [{"role": "user", "content": "hello there!"}]}),
        ({}, {"sample_index": 1}),
        ({}, {"input_hash": "other-item"}),
        ({}, {"temperature": 0.7}),
        ({}, {"max_tokens": 10}),
        ({}, {"seed": 3}),
        ({}, {"response_format": {"type": "json_object"}}),
    ],
)
def test_changing_what_decides_the_answer_misses_the_cache(tmp_path, client_change, request_change):
    db = tmp_path / "c.sqlite"
    base = {"messages": [{"role": "user", "content": "hello there"}], "input_hash": "item-1"}
    with FakeOpenAIServer() as server:
        ChatClient(config(server, db)).run_many([ChatRequest(**base)])
        assert sent(server) == 1
        changed = ChatClient(config(server, db, **client_change))
        result = changed.run_many([ChatRequest(**{**base, **request_change})])[0]
        assert sent(server) == 2
    assert not result.cached and changed.usage.cache_hits == 0


def test_the_tag_is_a_label_not_part_of_the_key(tmp_path):
    db = tmp_path / "c.sqlite"
    with FakeOpenAIServer() as server:
        ChatClient(config(server, db)).run_many([ask("same", tag="first run")])
        result = ChatClient(config(server, db)).run_many([ask("same", tag="second run")])[0]
        assert sent(server) == 1
    assert result.cached


def test_sampled_requests_are_cached_per_sample_index(tmp_path):
    db = tmp_path / "c.sqlite"
    samples = [ask("tell a story", temperature=1.0, sample_index=i) for i in range(3)]
    with FakeOpenAIServer() as server:
        ChatClient(config(server, db)).run_many(samples)
        assert sent(server) == 3
        rerun = ChatClient(config(server, db)).run_many(samples + [ask("tell a story", temperature=1.0, sample_index=3)])
        assert sent(server) == 4
    assert [r.cached for r in rerun] == [True, True, True, False]


@pytest.mark.parametrize("with_cache", [True, False])
def test_two_identical_concurrent_requests_send_one_http_request(tmp_path, with_cache):
    with FakeOpenAIServer(latency_s=0.2) as server:
        client = ChatClient(config(server, tmp_path / "c.sqlite" if with_cache else None))
        results = client.run_many([ask("twin"), ask("twin"), ask("other")])
        assert sent(server) == 2
    assert results[0].text == results[1].text == "twin"
    assert sorted([results[0].cached, results[1].cached]) == [False, True]
    assert client.usage.deduplicated == 1 and client.usage.requests_sent == 2


def test_a_failed_leader_fails_its_duplicates_too(tmp_path):
    with FakeOpenAIServer(fault_fn=lambda body, attempt: "400", latency_s=0.1) as server:
        client = ChatClient(config(server, tmp_path / "c.sqlite"))
        results = client.run_many([ask("doomed"), ask("doomed")])
        assert sent(server) == 1
    assert [r.reason for r in results] == ["bad_request", "bad_request"]


def test_failures_are_not_cached(tmp_path):
    db = tmp_path / "c.sqlite"
    with FakeOpenAIServer(fault_fn=lambda body, attempt: "503" if attempt < 2 else None) as server:
        failed = ChatClient(config(server, db, max_retries=1)).run_many([ask("later")])[0]
        ok = ChatClient(config(server, db, max_retries=1)).run_many([ask("later")])[0]
    assert failed.reason == "server_error"
    assert isinstance(ok, ChatResult) and not ok.cached


def test_cache_is_shared_safely_between_async_tasks(tmp_path):
    cache = ResultCache(tmp_path / "c.sqlite")

    async def writer(i: int) -> None:
        await asyncio.sleep(0)
        cache.put(f"k{i}", CachedReply(f"text {i}", i, i, "stop", "m"))

    async def main() -> None:
        await asyncio.gather(*(writer(i) for i in range(200)))

    asyncio.run(main())
    assert len(cache) == 200 and cache.get("k7").text == "text 7"
    cache.close()


_KILLED_RUN = textwrap.dedent(
    """
    import sys
    from paralm.api.client import ChatClient, ChatRequest, ClientConfig
    from paralm.api.fake.server import FakeOpenAIServer

    with FakeOpenAIServer(latency_s=0.01) as server:
        config = ClientConfig(base_url=server.base_url, model="m1", concurrency=8, cache_path=sys.argv[1])
        reqs = [ChatRequest(messages=[{"role": "user", "content": f"item {i}"}]) for i in range(5000)]
        ChatClient(config).run_many(reqs)
    """
)


def _rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
    except sqlite3.OperationalError:  # the child has not created the table yet
        return 0


def test_cache_survives_sigkill_mid_run_with_complete_rows_only(tmp_path):
    db = tmp_path / "killed.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, str(db)], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 30
        while _rows(db) < 60 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
        assert child.poll() is None, "the child finished or died before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    cache = ResultCache(db)
    expected = {cache_key(ask(f"item {i}").key_fields("m1")): f"item {i}" for i in range(5000)}
    keys = cache.keys()
    assert 60 <= len(keys) < 5000
    for key in keys:  # every row is whole and belongs to the request its key names
        row = cache.get(key)
        assert row.text == expected[key] and row.prompt_tokens == 2 and row.completion_tokens == 2
    cache.close()

    with FakeOpenAIServer() as server:
        reqs = [ask(f"item {i}") for i in range(200)]
        client = ChatClient(config(server, db))
        results = client.run_many(reqs)
        finished_before = sum(1 for i in range(200) if cache_key(reqs[i].key_fields("m1")) in set(keys))
        assert sent(server) == 200 - finished_before
    assert [r.text for r in results] == [f"item {i}" for i in range(200)]
    assert client.usage.cache_hits == finished_before
