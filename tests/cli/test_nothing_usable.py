"""`paralm data generate` that produces no pair fails (exit 5) with the reason and publishes nothing;
`--eval-splits` keeps a folder holding every split from excluding every clip; `--retry-failed` asks again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAIServer
from genkit import clip_metas, scripted_reply, write_clips

from paralm.api.chat_types import ClientConfig
from paralm.creation.generate import GenerateConfig, generate
from paralm.creation.generate import main as generate_main
from paralm.fault.exits import FaultExit

PARALM = str(Path(sys.executable).with_name("paralm"))


def generate_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PARALM, "data", "generate", *args], capture_output=True, text=True, timeout=120)


def unlabelled(metas: list[dict]) -> list[dict]:
    for m in metas:
        m["labels"] = {}
    return metas


def test_generate_with_every_clip_failing_exits_5_names_the_reason_and_publishes_nothing(tmp_path):
    src = write_clips(tmp_path / "src", unlabelled(clip_metas(3)))
    proc = generate_cli(str(src), "--out", str(tmp_path / "out"), "--backend", "template")
    assert proc.returncode == 5, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("paralm data generate: nothing usable: no QA pair was generated; failures: ")
    assert "x3" in last and "failures.jsonl" in last
    assert not (tmp_path / "out").exists()  # no "complete", empty shard set
    failures = (tmp_path / "out.state" / "failures.jsonl").read_text().splitlines()
    assert len(failures) == 3
    again = generate_cli(str(src), "--out", str(tmp_path / "out"), "--backend", "template")
    assert again.returncode == 5  # a rerun does not mistake it for a finished run


def test_eval_sets_holding_every_split_exclude_all_unless_eval_splits_names_them(tmp_path):
    metas = clip_metas(6)
    for i, m in enumerate(metas):
        m["split"] = ("train", "train", "train", "train", "val", "test")[i]
    corpus = write_clips(tmp_path / "corpus", metas)
    whole = generate_cli(str(corpus), "--out", str(tmp_path / "a"), "--backend", "template", "--eval-sets", str(corpus))
    assert whole.returncode == 5
    assert "every one of the 6 clips is in an evaluation set" in whole.stderr and "--eval-splits" in whole.stderr
    assert generate_main([str(corpus), "--out", str(tmp_path / "b"), "--backend", "template", "--eval-sets",
                          str(corpus), "--eval-splits", "val", "test", "--quiet"]) == 0
    report = json.loads((tmp_path / "b" / "generate_report.json").read_text())
    assert report["clips"]["leak_key"] == 2 and report["clips"]["written"] == 4


def test_too_few_clips_with_pairs_is_below_the_default_success_rate(tmp_path):
    metas = clip_metas(4)
    unlabelled(metas[:3])
    src = write_clips(tmp_path / "src", metas)
    with pytest.raises(FaultExit) as stop:
        generate_main([str(src), "--out", str(tmp_path / "out"), "--backend", "template", "--quiet"])
    assert stop.value.exit_code == 5 and "only 1/4 clips got pairs (25.0% < --min-success-rate 0.5)" in str(stop.value)
    assert generate_main([str(src), "--out", str(tmp_path / "out2"), "--backend", "template", "--quiet",
                          "--min-success-rate", "0.25"]) == 0


def test_retry_failed_asks_the_server_again_instead_of_reserving_the_cached_invalid_reply(tmp_path):
    # "flaky" transcripts get prose (not JSON) from the scripted generator on sampling seed 0 only
    src = write_clips(tmp_path / "src", clip_metas(3, special={0: "flaky clip that rambles on"}))
    with FakeOpenAIServer(reply_fn=scripted_reply) as server:
        client = ClientConfig(base_url=server.base_url, model="gen-test", concurrency=2, timeout_s=5.0,
                              backoff_base_s=0.01, backoff_max_s=0.05)
        cfg = dict(backend="openai", client=client, invalid_retries=0, state=str(tmp_path / "state"))
        first = generate(src, tmp_path / "out1", GenerateConfig(**cfg), quiet=True)
        assert first["failures"] == {"not_json": 1} and len(server.chat_requests()) == 3
        server.clear_log()
        retry = generate(src, tmp_path / "out2", GenerateConfig(retry_failed=True, **cfg),
                         quiet=True)
        sent = server.chat_requests()
    assert len(sent) == 1 and sent[0]["body"]["seed"] == 1  # asked anew, with the next sample seed
    assert retry["failures"] == {} and retry["clips"]["with_pairs"] == 3 and retry["clips"]["written"] == 3


def test_an_unreachable_service_leaves_the_run_unfinished_with_exit_8_not_resume_refused(tmp_path):
    src = write_clips(tmp_path / "src", clip_metas(2))
    with FakeOpenAIServer(reply_fn=scripted_reply) as server:
        url = server.base_url  # the server is gone once the block ends
    code = generate_main([str(src), "--out", str(tmp_path / "out"), "--backend", "openai", "--model", "m",
                          "--base-url", url, "--max-retries", "0", "--timeout", "2", "--quiet"])
    assert code == 8 and not (tmp_path / "out").exists()
