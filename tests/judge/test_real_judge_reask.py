"""The judge asks again after an unreadable reply: a 30 %-faulty server still ends with >= 99 of 100 rows judged.

Faults are drawn independently per request (each re-ask differs in its messages and seed, so it draws
anew): 15 % transport faults (429, 500, 503; the client retries those) and 15 % content faults (a
reply with no rating, a reply with a rating-less JSON object, a reply with two different ratings).
Without re-asks about 15 % of rows would stay unjudged; with the default two re-asks a row stays
unjudged only when three replies in a row are unreadable (0.15^3).
"""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from judgekit import (
    FakeOpenAIServer,
    answer_index,
    expected_rating,
    make_rows,
    read_json,
    write_rows,
)

from paralm.api.reask import REMINDER
from paralm.judge.results import read_judged

PARALM = str(Path(sys.executable).with_name("paralm"))
N = 100
TRANSPORT = (("429", 0.05), ("500", 0.05), ("503", 0.05))
CONTENT = (("garbage", 0.05), ("schema_invalid", 0.05))  # no rating; a JSON object without one
TWO_RATINGS = 0.05 / (1.0 - 0.25)  # of the replies not faulted above, so 5 % of all requests


def _draw(body: dict, attempt: int, salt: str) -> float:
    blob = json.dumps([body, attempt, salt], sort_keys=True).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") / 2**64


def fault_fn(body: dict, attempt: int) -> str | None:
    u, cumulative = _draw(body, attempt, "fault"), 0.0
    for name, p in (*TRANSPORT, *CONTENT):
        cumulative += p
        if u < cumulative:
            return name
    return None


def judge_reply(body: dict) -> str:
    """A clean verdict with rating i % 6, or (about 5 % of requests) two conflicting ratings."""
    i = answer_index(body)
    if _draw(body, 0, "two") < TWO_RATINGS:
        return json.dumps({"rationale": "torn", "rating": 1}) + "\nOn reflection, Rating: 4"
    return json.dumps({"rationale": f"verdict on {i}", "rating": expected_rating(i)})


def run_judge(pred: Path, out: Path, server: FakeOpenAIServer) -> subprocess.CompletedProcess:
    cmd = [PARALM, "judge", "--predictions", str(pred), "--out", str(out), "--base-url", server.base_url,
           "--model", "judge-a", "--concurrency", "8", "--timeout", "5", "--backoff-base", "0.01",
           "--backoff-max", "0.05", "--retry-after-cap", "0.05", "--quiet"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240)


def test_reask_on_unreadable_replies_judges_99_of_100_rows_and_counts_every_reask(tmp_path):
    pred = write_rows(tmp_path / "p.jsonl", make_rows(N))
    out = tmp_path / "out"
    server = FakeOpenAIServer(reply_fn=judge_reply, fault_fn=fault_fn, retry_after=0.01)
    with server:
        done = run_judge(pred, out, server)
        log = server.chat_requests()
    assert done.returncode == 0, done.stderr
    judged, summary = read_judged(out), read_json(out / "summary.json")

    assert summary["judged"] >= 99 and all(r.judged or r.reason for r in judged)
    assert all(r.rating == expected_rating(i) for i, r in enumerate(judged) if r.judged)  # never a faulty rating
    faults = [e["fault"] for e in log]
    assert 0.2 < sum(f is not None for f in faults) / len(faults) < 0.4  # the server really was that faulty

    reminded = [e for e in log if REMINDER.split(":")[0] in e["body"]["messages"][-1]["content"]]
    reasks = summary["reasks"]
    assert reasks["total"] == sum(r.reasks for r in judged) > 0
    assert reasks["judged_after_reask"] == sum(r.judged for r in judged if r.reasks) >= reasks["rows"] - 1
    assert sum(reasks["by_reason"].values()) == reasks["total"]
    assert {"parse:no_rating", "parse:missing_rating", "parse:conflicting_ratings"} <= set(reasks["by_reason"])
    # each re-ask is a new request (stricter reminder, seed + k): distinct re-asks = reminded bodies
    assert len({json.dumps(e["body"], sort_keys=True) for e in reminded}) == reasks["total"]
    assert {e["body"]["seed"] for e in reminded} <= {1, 2}
    assert sum(r.attempts for r in judged) == len(log)  # every HTTP attempt, re-asks included, on its row
    assert "re-asks after unreadable replies" in (out / "summary.md").read_text()


def test_rerun_with_the_same_cache_sends_no_request_and_repeats_every_reask(tmp_path):
    pred = write_rows(tmp_path / "p.jsonl", make_rows(30))
    server = FakeOpenAIServer(reply_fn=judge_reply, fault_fn=fault_fn, retry_after=0.01)
    with server:
        cmd_out = tmp_path / "out"  # the rerun uses the same folder, so the same judge_cache.sqlite
        assert run_judge(pred, cmd_out, server).returncode == 0
        server.clear_log()
        assert run_judge(pred, cmd_out, server).returncode == 0
        assert server.chat_requests() == []
    summary = read_json(cmd_out / "summary.json")
    assert summary["usage"]["requests_sent"] == 0 and summary["reasks"]["total"] > 0
