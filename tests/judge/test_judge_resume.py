"""Crash safety and caching of `paralm judge`: a killed run resumes without re-asking finished rows."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from judgekit import (
    FakeOpenAIServer,
    answer_index,
    judge_args,
    make_rows,
    read_json,
    scripted_judge,
    write_rows,
)

from paralm.formats.jsonl import read_jsonl
from paralm.judge.commands import main_judge
from paralm.judge.results import read_judged

REPO = Path(__file__).resolve().parents[2]
N = 200
COMPARED = ("item_id", "status", "rating", "score", "rationale", "reason", "reply", "rubric_sha256", "input_hash")


def verdicts(out: Path) -> list[tuple]:
    return [tuple(r.to_dict()[k] for k in COMPARED) for r in read_judged(out)]


def finished_in(partial: Path) -> set[int]:
    if not partial.exists():
        return set()
    return {int(obj["key"][3:]) for _, obj in read_jsonl(partial, allow_truncated_tail=True)}


def run_until_half_then_kill(args: list[str], partial: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "paralm.judge.commands", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while len(finished_in(partial)) < N // 2:
            assert proc.poll() is None, f"judge exited early: {proc.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "judge subprocess made no progress"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def wait_until_quiet(server: FakeOpenAIServer, quiet_s: float = 0.3) -> None:
    seen, since = -1, time.monotonic()
    while time.monotonic() - since < quiet_s:
        if len(server.log) != seen:
            seen, since = len(server.log), time.monotonic()
        time.sleep(0.02)


def test_killed_at_half_then_rerun_asks_only_for_unfinished_rows(tmp_path):
    pred = write_rows(tmp_path / "p.jsonl", make_rows(N))
    out = tmp_path / "out"
    with FakeOpenAIServer(reply_fn=scripted_judge, latency_s=0.03) as server:
        run_until_half_then_kill(judge_args(pred, out, server, "--concurrency", "4"), out / "judged.partial.jsonl")
        finished = finished_in(out / "judged.partial.jsonl")
        assert N // 2 <= len(finished) < N
        wait_until_quiet(server)  # the dead client's in-flight requests still get logged
        server.clear_log()

        assert main_judge(judge_args(pred, out, server, "--concurrency", "4")) == 0
        asked = [answer_index(e["body"]) for e in server.chat_requests()]
        # nothing finished is asked again; at most the killed run's in-flight rows were cached unwritten
        assert not set(asked) & finished
        assert len(asked) == len(set(asked)) and N - len(finished) - 4 <= len(asked) <= N - len(finished)
        rows = read_judged(out)
        assert all(rows[i].cached for i in finished)

        assert main_judge(judge_args(pred, tmp_path / "fresh", server, "--concurrency", "8")) == 0
    assert verdicts(out) == verdicts(tmp_path / "fresh")
    assert read_json(out / "summary.json")["score"] == read_json(tmp_path / "fresh" / "summary.json")["score"]


def test_cache_hits_identical_input_and_misses_model_rubric_or_answer_changes(tmp_path):
    rows = make_rows(10)
    pred = write_rows(tmp_path / "p.jsonl", rows)
    cache = str(tmp_path / "shared_cache.sqlite")

    def sent(server, name, *extra, predictions=pred):
        server.clear_log()
        assert main_judge(judge_args(predictions, tmp_path / name, server, "--cache", cache, *extra)) == 0
        return len(server.chat_requests())

    with FakeOpenAIServer(reply_fn=scripted_judge) as server:
        assert sent(server, "first") == 10
        assert sent(server, "identical") == 0
        assert all(r.cached for r in read_judged(tmp_path / "identical"))
        assert verdicts(tmp_path / "identical") == verdicts(tmp_path / "first")
        assert sent(server, "model_b", "--model", "judge-b") == 10
        assert sent(server, "rubric", "--rubric", "label_binary", "--min-success-rate", "0") == 10
        assert sent(server, "repeat", "--sample-index", "1") == 10
        rows[3].answer = "answer 3: the speaker sounds furious, actually."
        changed = write_rows(tmp_path / "p2.jsonl", rows)
        assert sent(server, "changed", predictions=changed) == 1
    summary = read_json(tmp_path / "identical" / "summary.json")
    assert summary["usage"]["requests_sent"] == 0 and summary["usage"]["cache_hits"] == 10
