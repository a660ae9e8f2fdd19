"""`paralm judge` as a user runs it: nothing usable is a failure (exit 5), long fields are cut, the endpoint
comes from --base-url > $PARALM_JUDGE_BASE_URL > $OPENAI_BASE_URL, progress goes to stderr."""

import json
import os
import subprocess
import sys
from pathlib import Path

from judgekit import FakeOpenAIServer, judge_args, make_rows, scripted_judge, write_rows

from paralm.cli_flags import judge_base_url
from paralm.judge.commands import main_judge
from paralm.judge.results import read_judged

PARALM = str(Path(sys.executable).with_name("paralm"))


def run_paralm(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("PARALM_JUDGE_BASE_URL", "OPENAI_BASE_URL")}
    return subprocess.run([PARALM, *args], capture_output=True, text=True, timeout=120, env={**clean, **(env or {})})


def test_judge_with_no_row_judged_exits_5_and_names_the_reason(tmp_path):
    pred = write_rows(tmp_path / "p.jsonl", make_rows(4))
    with FakeOpenAIServer(reply_fn=lambda body: "I cannot grade this.") as server:
        proc = run_paralm("judge", *judge_args(pred, tmp_path / "o", server, "--max-retries", "0"))
    assert proc.returncode == 5, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("paralm judge: nothing usable: no row was judged") and "parse:" in last
    assert "Traceback" not in proc.stderr
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["judged"] == 0  # the record is still written


def test_judge_prints_progress_on_stderr_and_keeps_stdout_to_the_summary(tmp_path):
    pred = write_rows(tmp_path / "p.jsonl", make_rows(6))
    with FakeOpenAIServer(reply_fn=scripted_judge) as server:
        proc = run_paralm("judge", *judge_args(pred, tmp_path / "o", server))
    assert proc.returncode == 0, proc.stderr
    assert "judge: 6/6 rows" in proc.stderr and "(done)" in proc.stderr
    assert proc.stdout.startswith("judged 5/6")  # row 5 gets two ratings from the scripted judge


def test_a_50_kb_answer_is_cut_to_the_field_cap_and_the_cut_is_recorded(tmp_path):
    rows = make_rows(3)
    rows[1].answer += " " + "x" * 50_000
    full = len(rows[1].answer)
    pred = write_rows(tmp_path / "p.jsonl", rows)
    with FakeOpenAIServer(reply_fn=scripted_judge) as server:
        assert main_judge(judge_args(pred, tmp_path / "o", server, "--max-field-length", "1000")) == 0
        sizes = sorted(len(json.dumps(e["body"])) for e in server.chat_requests())
    judged = {r.prediction.key: r for r in read_judged(tmp_path / "o")}
    assert judged["utt0001"].truncated == {"answer": full}
    assert judged["utt0000"].truncated == {} and judged["utt0002"].truncated == {}
    assert sizes[-1] < 5_000  # the long row's request carries 1,000 answer characters, not 50,000
    assert judged["utt0001"].judged  # the judge still saw the start, which names the index


def test_base_url_precedence_flag_then_paralm_variable_then_openai_variable():
    env = {"PARALM_JUDGE_BASE_URL": "http://paralm/v1", "OPENAI_BASE_URL": "http://openai/v1"}
    assert judge_base_url("http://flag/v1", env) == "http://flag/v1"
    assert judge_base_url(None, env) == "http://paralm/v1"
    assert judge_base_url(None, {"OPENAI_BASE_URL": "http://openai/v1"}) == "http://openai/v1"
    assert judge_base_url(None, {}) is None


def test_judge_reaches_the_server_named_by_openai_base_url_alone(tmp_path):
    pred = write_rows(tmp_path / "p.jsonl", make_rows(3))
    with FakeOpenAIServer(reply_fn=scripted_judge) as server:
        args = [a for a in judge_args(pred, tmp_path / "o", server) if a not in ("--base-url", server.base_url)]
        proc = run_paralm("judge", *args, env={"OPENAI_BASE_URL": server.base_url})
        assert len(server.chat_requests()) == 3
    assert proc.returncode == 0, proc.stderr
