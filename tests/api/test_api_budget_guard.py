"""Budgets that hold against the server's own numbers, and keys a server echoes in a normal reply.

A server decides what its `usage` block says: absent, negative, fractional or absurd counts must not
let `--budget-usd` be bypassed (they are estimated from the request size and counted), a budget with
no prices is refused (it could never trip), a run stopped at its budget exits with EXIT_BUDGET, and a
key echoed inside a 200 reply never reaches a result, judged.jsonl or the cache in clear.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAIServer
from judgekit import judge_args, make_rows, scripted_judge, write_rows

from paralm.api.client import ApiError, ChatClient, ChatRequest, ChatResult, ClientConfig
from paralm.api.usage_check import estimate_tokens
from paralm.fault.exits import EXIT_BUDGET, EXIT_USER_ERROR

PARALM = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "paralm")
SECRET = "sk-echo-4b3c2d1e0f9a8b7c-never-store-me"
PLAIN_KEY = "plain-key-without-a-provider-shape-123"  # not key-shaped: only known as the configured key
PRICES = dict(price_per_1k_prompt=1000.0, price_per_1k_completion=1000.0)


def ask(text: str) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}])


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PARALM, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("bad_usage", [
    None,                                                   # no usage block at all
    {"prompt_tokens": -1000, "completion_tokens": -1000},   # negative: old code subtracted cost
    {"prompt_tokens": 0, "completion_tokens": 0},           # nothing billed for a real prompt
    {"prompt_tokens": 4.5, "completion_tokens": True},      # not integers
    {"prompt_tokens": 10**15, "completion_tokens": 2},      # absurd
])
def test_unusable_usage_is_estimated_counted_and_still_trips_the_budget(bad_usage):
    reqs = [ask(f"please answer question {i} carefully") for i in range(4)]
    with FakeOpenAIServer(usage_fn=lambda body, counted: bad_usage) as server:
        client = ChatClient(ClientConfig(base_url=server.base_url, model="m", concurrency=1, budget_usd=1.0,
                                         **PRICES))
        results = client.run_many(reqs)
        assert len(server.chat_requests()) == 1
    first = results[0]
    text = reqs[0].messages[0]["content"]  # echoed back as the reply
    assert isinstance(first, ChatResult)
    assert first.prompt_tokens == estimate_tokens(len(text), 1) == 16
    if bad_usage is None or bad_usage["completion_tokens"] != 2:
        assert first.completion_tokens == estimate_tokens(len(text)) == 12
    assert [r.reason for r in results[1:]] == ["budget_exceeded"] * 3
    u = client.usage
    assert (u.usage_missing, u.usage_invalid) == ((1, 0) if bad_usage is None else (0, 1))
    assert u.budget_refused == 3 and u.cost_usd == pytest.approx(first.prompt_tokens + first.completion_tokens)


def test_plausible_usage_is_billed_as_reported_and_not_counted():
    with FakeOpenAIServer() as server:
        client = ChatClient(ClientConfig(base_url=server.base_url, model="m"))
        (result,) = client.run_many([ask("four words right here")])
    assert (result.prompt_tokens, result.completion_tokens) == (4, 4)
    assert (client.usage.usage_missing, client.usage.usage_invalid) == (0, 0)


def test_understated_prompt_tokens_for_a_long_prompt_are_invalid():
    long_prompt = "word " * 2000  # 10,000 characters: no tokenizer bills 1 token for it
    with FakeOpenAIServer(usage_fn=lambda body, counted: {**counted, "prompt_tokens": 1}) as server:
        client = ChatClient(ClientConfig(base_url=server.base_url, model="m"))
        (result,) = client.run_many([ask(long_prompt)])
    assert client.usage.usage_invalid == 1
    assert result.prompt_tokens == estimate_tokens(len(long_prompt), 1)
    assert result.completion_tokens == 2000  # the server's completion count was plausible: kept


@pytest.mark.parametrize("prices", [{}, {"price_per_1k_prompt": 0.0, "price_per_1k_completion": 0.0}])
def test_budget_without_prices_is_refused_by_the_client_config(prices):
    with pytest.raises(ValueError, match="price-per-1k-prompt"):
        ClientConfig(base_url="http://127.0.0.1:9/v1", model="m", budget_usd=5.0, **prices)


def test_judge_refuses_a_budget_without_prices_with_exit_2_before_sending(tmp_path):
    pred = write_rows(tmp_path / "p.jsonl", make_rows(2))
    with FakeOpenAIServer(reply_fn=scripted_judge) as server:
        proc = run_cli("judge", *judge_args(pred, tmp_path / "o", server, "--budget-usd", "5"))
        assert server.chat_requests() == []
    assert proc.returncode == EXIT_USER_ERROR
    assert "needs token prices" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_generate_refuses_a_budget_without_prices_with_exit_2(tmp_path):
    proc = run_cli("data", "generate", str(tmp_path / "src"), "--out", str(tmp_path / "out"),
                   "--backend", "openai", "--model", "m", "--budget-usd", "5")
    assert proc.returncode == EXIT_USER_ERROR and "needs token prices" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_judge_stopped_at_its_budget_exits_6_even_when_the_server_sends_no_usage(tmp_path):
    pred = write_rows(tmp_path / "p.jsonl", make_rows(5))
    out = tmp_path / "o"
    with FakeOpenAIServer(reply_fn=scripted_judge, usage_fn=lambda body, counted: None) as server:
        capped = run_cli("judge", *judge_args(pred, out, server, "--concurrency", "1", "--budget-usd", "0.001",
                                              "--price-per-1k-prompt", "1"))
        assert len(server.chat_requests()) == 1
        summary = json.loads((out / "summary.json").read_text())
        md = (out / "summary.md").read_text()
        rerun = run_cli("judge", *judge_args(pred, out, server, "--concurrency", "1"))
        assert len(server.chat_requests()) == 5  # the finished row came from the cache
    assert capped.returncode == EXIT_BUDGET, capped.stderr
    assert "stopped at the budget" in capped.stderr.splitlines()[-1] and "4 request(s) not sent" in capped.stderr
    assert summary["judged"] == 1 and summary["usage"]["usage_missing"] == 1
    assert summary["usage"]["budget_refused"] == 4 and summary["usage"]["cost_usd"] > 0.001
    assert "token counts were missing on 1 and implausible on 0 replies" in md
    assert "stopped at the budget: 4 request(s) not sent" in md
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads((out / "summary.json").read_text())["judged"] == 5


def test_a_key_echoed_in_a_normal_reply_is_masked_before_it_is_cached_or_returned(tmp_path, monkeypatch):
    monkeypatch.setenv("PARALM_TEST_ECHO_KEY", PLAIN_KEY)
    db = tmp_path / "c.sqlite"
    echo = f"your key is {PLAIN_KEY}, and another one {SECRET} works too"
    with FakeOpenAIServer(reply_fn=lambda body: echo) as server:
        cfg = ClientConfig(base_url=server.base_url, model="m", api_key_env="PARALM_TEST_ECHO_KEY",
                           cache_path=str(db))
        client = ChatClient(cfg)
        (fresh,) = client.run_many([ask("echo my key")])
        client.close_cache()
        (cached,) = ChatClient(cfg).run_many([ask("echo my key")])
    assert fresh.text == cached.text == "your key is ***, and another one *** works too"
    assert cached.cached
    raw = db.read_bytes()
    assert PLAIN_KEY.encode() not in raw and SECRET.encode() not in raw


def test_short_placeholder_keys_are_not_masked_out_of_replies(monkeypatch):
    monkeypatch.setenv("PARALM_TEST_ECHO_KEY", "EMPTY")
    with FakeOpenAIServer(reply_fn=lambda body: "EMPTY rooms echo") as server:
        cfg = ClientConfig(base_url=server.base_url, model="m", api_key_env="PARALM_TEST_ECHO_KEY")
        (result,) = ChatClient(cfg).run_many([ask("hi")])
    assert result.text == "EMPTY rooms echo"


def test_judge_never_writes_a_key_the_server_echoes_in_its_verdict(tmp_path):
    pred = write_rows(tmp_path / "p.jsonl", make_rows(3))
    out = tmp_path / "o"

    def leaky_judge(body: dict) -> str:
        verdict = json.loads(scripted_judge(body))
        return json.dumps({**verdict, "rationale": f"authorised with {SECRET}; {verdict['rationale']}"})

    with FakeOpenAIServer(reply_fn=leaky_judge) as server:
        proc = run_cli("judge", *judge_args(pred, out, server, "--api-key-env", "PARALM_TEST_ECHO_KEY"),
                       env={"PARALM_TEST_ECHO_KEY": SECRET})
        assert server.chat_requests()[0]["headers"]["authorization"] == f"Bearer {SECRET}"
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in (out / "judged.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all("authorised with ***" in json.dumps(r) for r in rows)
    for path in out.iterdir():
        assert SECRET.encode() not in path.read_bytes(), path.name
    assert SECRET not in proc.stdout + proc.stderr


def test_budget_refusals_never_happen_without_a_budget():
    with FakeOpenAIServer(usage_fn=lambda body, counted: None) as server:
        client = ChatClient(ClientConfig(base_url=server.base_url, model="m", **PRICES))
        results = client.run_many([ask(f"q {i}") for i in range(3)])
    assert all(isinstance(r, ChatResult) for r in results) and not any(isinstance(r, ApiError) for r in results)
    assert client.usage.budget_refused == 0 and client.usage.usage_missing == 3


def test_generate_stopped_at_its_budget_exits_6_and_a_rerun_finishes(tmp_path):
    from genkit import clip_metas, scripted_reply, write_clips

    src = write_clips(tmp_path / "src", clip_metas(3))
    out = tmp_path / "out"
    args = ("data", "generate", str(src), "--out", str(out), "--backend", "openai", "--model", "gen",
            "--concurrency", "1", "--quiet")
    with FakeOpenAIServer(reply_fn=scripted_reply, usage_fn=lambda body, counted: {"prompt_tokens": -5}) as server:
        capped = run_cli(*args, "--base-url", server.base_url, "--budget-usd", "0.001",
                         "--price-per-1k-prompt", "1")
        assert len(server.chat_requests()) == 1, capped.stderr
        assert not (out / "generate_report.json").exists()  # an unfinished run publishes nothing
        rerun = run_cli(*args, "--base-url", server.base_url)
        assert len(server.chat_requests()) == 3  # the finished clip is not asked again
    assert capped.returncode == EXIT_BUDGET, capped.stderr
    assert "2 request(s) not sent" in capped.stderr.splitlines()[-1]
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads((out / "generate_report.json").read_text())["clips"]["written"] == 3


def test_a_401_that_quotes_the_refused_key_leaves_it_in_no_file_and_no_message(tmp_path):
    pred = write_rows(tmp_path / "p.jsonl", make_rows(3))
    out = tmp_path / "o"
    with FakeOpenAIServer(reply_fn=scripted_judge, fault_fn=lambda body, attempt: "401_echo") as server:
        proc = run_cli("judge", *judge_args(pred, out, server, "--api-key-env", "PARALM_TEST_ECHO_KEY"),
                       env={"PARALM_TEST_ECHO_KEY": SECRET})
        assert len(server.chat_requests()) == 3  # auth is not retried
    assert proc.returncode != 0 and SECRET not in proc.stdout + proc.stderr
    rows = [json.loads(line) for line in (out / "judged.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in rows] == ["api:auth"] * 3
    assert all("Incorrect API key provided: ***." in r["detail"] for r in rows)
    for path in out.iterdir():
        assert SECRET.encode() not in path.read_bytes(), path.name


def test_generate_summary_shows_estimated_usage_and_budget_refusals():
    from paralm.creation.generate.output import format_summary

    usage = {"requests_sent": 3, "cost_usd": 0.5, "usage_missing": 2, "usage_invalid": 1, "budget_refused": 4}
    line = format_summary({"usage_this_run": usage}).splitlines()[-1]
    assert line.endswith("usage_missing=2, usage_invalid=1, budget_refused=4")



def test_a_non_string_finish_reason_passes_the_masking_boundary_unchanged():
    client = ChatClient(ClientConfig(base_url="http://127.0.0.1:9/v1", model="m"))
    result = client._masked(ChatResult(f"key {SECRET}", 1, 1, False, 1, "m", 7))  # noqa: SLF001
    assert (result.text, result.finish_reason) == ("key ***", 7)
