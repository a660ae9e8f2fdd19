"""The real SmolLM2-135M-Instruct behind `transformers serve`, as judge (3 rows) and QA generator (2 clips).

A 135M model rarely follows the output formats, so this checks honesty, not quality: every row ends
judged or unjudged with its reason (re-asks counted), every clip has pairs or a failure reason, and a
rerun answers everything from the cache and sends no request. `max_tokens` is capped at 64: the server
answers one request at a time and every unreadable reply costs all its re-asks.
Run with `pytest -m serve tests/serve/test_real_serve.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from genkit import clip_metas, write_clips
from realkit import REAL_MARKS as real_marks
from realkit import session_models
from test_serve_integration import CLI, MISSING, transformers_serve

from paralm.formats.predictions import PredictionRow, write_predictions
from paralm.judge.results import read_judged

PARALM = str(Path(sys.executable).with_name("paralm"))
# 18 min on the shared 2-core build machine (433 s judge, 479 s generate, 116 s server start): too long for the
# default run, so it is `slow` as well as `serve` (`pytest -m serve` runs it).
pytestmark = [*real_marks, pytest.mark.serve, pytest.mark.slow,
              pytest.mark.skipif(bool(MISSING) or CLI is None, reason="`transformers serve` needs transformers[serving]")]


@pytest.fixture(scope="module")
def served_smollm2(tmp_path_factory):
    model = str(session_models(tmp_path_factory)["llm"])
    with transformers_serve(model, timeout_s=180) as base_url:
        yield base_url, model


def _judge(pred: Path, out: Path, base_url: str, model: str) -> subprocess.CompletedProcess:
    cmd = [PARALM, "judge", "--predictions", str(pred), "--out", str(out), "--base-url", base_url, "--model", model,
           "--concurrency", "1", "--max-tokens", "64", "--no-json-mode", "--timeout", "120", "--max-retries", "1",
           "--min-success-rate", "0", "--quiet"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def test_real_smollm2_judge_counts_every_row_and_reask_and_a_rerun_sends_nothing(tmp_path, served_smollm2):
    base_url, model = served_smollm2
    rows = [PredictionRow(key=f"k{i}", question="How does the speaker feel?", type="DP",
                          reference=f"The speaker sounds {e}.", answer=f"They sound {a}.", emotion=e)
            for i, (e, a) in enumerate([("happy", "happy"), ("sad", "angry"), ("angry", "angry")])]
    pred = tmp_path / "p.jsonl"
    write_predictions(pred, rows)
    first = _judge(pred, tmp_path / "out", base_url, model)
    assert first.returncode in (0, 5), first.stderr[-2000:]  # 5: no row judged, said, never scored 0
    judged = read_judged(tmp_path / "out")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert len(judged) == 3 and all(r.judged or r.reason for r in judged)
    assert all(r.score is None for r in judged if not r.judged)
    assert all(r.reasks == 2 for r in judged if r.reason and r.reason.startswith("parse:"))
    assert summary["reasks"]["total"] == sum(r.reasks for r in judged)
    assert summary["usage"]["requests_sent"] == sum(1 + r.reasks for r in judged)

    again = _judge(pred, tmp_path / "out", base_url, model)
    assert again.returncode == first.returncode
    rerun = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert rerun["usage"]["requests_sent"] == 0 and rerun["judged"] == summary["judged"]


def test_real_smollm2_generator_gives_pairs_or_a_reason_per_clip_and_a_rerun_sends_nothing(tmp_path, served_smollm2):
    base_url, model = served_smollm2
    src = write_clips(tmp_path / "src", clip_metas(2))
    cmd = [PARALM, "data", "generate", str(src), "--out", str(tmp_path / "gen"), "--backend", "openai",
           "--base-url", base_url, "--model", model, "--max-tokens", "64", "--concurrency", "1",
           "--timeout-s", "120", "--max-retries", "1", "--quiet"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode in (0, 5), first.stderr[-2000:]  # 5: no pair at all, said
    state = tmp_path / "gen.state"
    report_file = next(p for p in (tmp_path / "gen" / "generate_report.json", state / "generate_report.json")
                       if p.exists())
    report = json.loads(report_file.read_text())
    clips = report["clips"]
    assert clips["with_pairs"] + clips["all_filtered"] + clips["failed"] == 2
    assert report["usage_this_run"]["requests_sent"] >= 2
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert again.returncode == first.returncode
    rerun = json.loads(report_file.read_text())
    assert (rerun.get("usage_this_run") or {}).get("requests_sent", 0) == 0
