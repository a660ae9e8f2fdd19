"""LLM generation against the fault-injecting server: every clip ends with pairs or a listed reason, and
the tokens the run counted are the tokens the server billed."""

from __future__ import annotations

import json
import re

from fake_openai_server import FakeOpenAIServer
from genkit import clip_metas, prompt_fields, scripted_reply, write_clips

from paralm.api.chat_types import ClientConfig
from paralm.creation.generate import GenerateConfig, generate
from paralm.creation.generate.prompt import PROMPT_SHA256, PROMPT_VERSION
from paralm.data.index import ShardIndex
from paralm.data.reader import iter_samples


def llm_config(base_url: str, tmp_path, structured: bool = False, **client) -> GenerateConfig:
    fields = dict(base_url=base_url, model="gen-test", concurrency=4, timeout_s=0.6, max_retries=3,
                  backoff_base_s=0.01, backoff_max_s=0.05, retry_after_cap_s=5.0)
    fields.update(client)
    return GenerateConfig(backend="openai", client=ClientConfig(**fields), structured=structured,
                          state=str(tmp_path / "state"))


def read_failures(out) -> dict[str, str]:
    return {r["key"]: r["reason"] for r in map(json.loads, (out / "failures.jsonl").read_text().splitlines())}


# clip number -> fault per (sample seed, attempt); every fault kind the issue names occurs, deterministically
FAULT_PLAN = {
    0: lambda seed, attempt: "429" if attempt == 0 else None,           # Retry-After 0.2 s, then fine
    1: lambda seed, attempt: ("500", "503")[attempt] if attempt < 2 else None,
    2: lambda seed, attempt: "hang" if attempt == 0 else None,          # past the client timeout, then fine
    4: lambda seed, attempt: "garbage" if seed == 0 else None,          # non-JSON first sample
    6: lambda seed, attempt: "schema_invalid" if seed == 0 else None,   # wrong JSON first sample
    8: lambda seed, attempt: "503",                                      # never recovers: server_error
    9: lambda seed, attempt: "hang",                                     # never answers: timeout
}


def planned_fault(body: dict, attempt: int) -> str | None:
    match = re.search(r"number (\d+)", prompt_fields(body)[0])
    plan = FAULT_PLAN.get(int(match.group(1))) if match else None
    return plan(body.get("seed"), attempt) if plan else None


def test_every_clip_ends_with_pairs_or_a_listed_reason_under_injected_faults(tmp_path):
    special = {3: "gibberish every time", 5: "wrongshape reply please", 7: "flaky first sample"}
    metas = clip_metas(12, special)
    src = write_clips(tmp_path / "src", metas)
    with FakeOpenAIServer(reply_fn=scripted_reply, fault_fn=planned_fault, retry_after=0.2, hang_s=1.5) as server:
        report = generate(src, tmp_path / "out", llm_config(server.base_url, tmp_path), quiet=True)
        billed = server.billed_tokens()
        log = server.chat_requests()
    usage = report["usage_this_run"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (billed["prompt_tokens"], billed["completion_tokens"])
    assert usage["requests_sent"] == len(log)
    assert {e["fault"] for e in log} == {None, "429", "500", "503", "hang", "garbage", "schema_invalid"}
    clip0 = [e["time"] for e in log if prompt_fields(e["body"])[0].endswith("number 0")]
    assert len(clip0) == 2 and clip0[1] - clip0[0] >= 0.2  # the Retry-After was waited for

    written = {row.key: meta for row, meta, _ in iter_samples(ShardIndex.load(tmp_path / "out"))}
    failed = read_failures(tmp_path / "out")
    assert set(written) | set(failed) == {m["key"] for m in metas} and not set(written) & set(failed)
    assert failed == {"clip003": "not_json", "clip005": "schema_invalid", "clip008": "server_error",
                      "clip009": "timeout"}
    # non-JSON and wrong-shape samples are counted and asked again with a new sample index
    assert report["invalid_generations"] == {"not_json": 3 + 1 + 1, "schema_invalid": 3 + 1}
    for meta in written.values():
        new = [p for p in meta["qa"] if p["origin"] == "llm"]
        assert {p["type"] for p in new} == {"C", "CP", "DP"}
        gen = new[0]["generator"]
        assert (gen["prompt_version"], gen["prompt_sha256"], gen["model"]) == (PROMPT_VERSION, PROMPT_SHA256, "gen-test")
    # the scripted generator plants one transcript-assuming and one duplicate pair per valid reply
    assert report["filtered"]["assumes_transcript"] == len(written)
    assert report["filtered"]["exact_duplicate"] == len(written)


def test_retry_after_over_the_cap_fails_the_clip_fast_with_that_reason(tmp_path):
    src = write_clips(tmp_path / "src", clip_metas(2))
    always_429 = lambda body, attempt: "429"  # noqa: E731
    with FakeOpenAIServer(reply_fn=scripted_reply, fault_fn=always_429, retry_after=30.0) as server:
        report = generate(src, tmp_path / "out", llm_config(server.base_url, tmp_path, retry_after_cap_s=1.0), quiet=True)
        assert len(server.chat_requests()) == 2
    assert report["failures"] == {"retry_after_too_long": 2}
    # no pair at all: nothing is published to --out; the failures list lives in the state folder
    assert not (tmp_path / "out").exists()
    assert read_failures(tmp_path / "state") == {"clip000": "retry_after_too_long", "clip001": "retry_after_too_long"}


def test_unreachable_server_leaves_clips_unfinished_and_a_rerun_finishes_them(tmp_path):
    src = write_clips(tmp_path / "src", clip_metas(3))
    with FakeOpenAIServer(reply_fn=scripted_reply) as server:
        url = server.base_url
    down = llm_config(url, tmp_path, max_retries=0)
    report = generate(src, tmp_path / "out", down, quiet=True)
    assert report["clips"]["unfinished"] == 3 and not (tmp_path / "out").exists()
    with FakeOpenAIServer(reply_fn=scripted_reply) as server:
        report = generate(src, tmp_path / "out", llm_config(server.base_url, tmp_path), quiet=True)
        assert len(server.chat_requests()) == 3
    assert report["clips"]["written"] == 3


def test_structured_output_request_carries_the_pair_schema(tmp_path):
    src = write_clips(tmp_path / "src", clip_metas(1))
    with FakeOpenAIServer(reply_fn=lambda body: scripted_reply(body).strip("`json\n")) as server:
        generate(src, tmp_path / "out", llm_config(server.base_url, tmp_path, structured=True), quiet=True)
        body = server.chat_requests()[0]["body"]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["pairs"]
    speech, emotion, n = prompt_fields(body)
    assert speech.startswith(clip_metas(1)[0]["transcript"]) and 3 <= n <= 6
