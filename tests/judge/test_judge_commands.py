"""`paralm judge` command-line behaviour: clear errors, no torch, outputs a reader can use."""

import subprocess
import sys
from pathlib import Path

import pytest
from judgekit import FakeOpenAIServer, judge_args, make_rows, read_json, scripted_judge, write_rows

from paralm.fault.exits import FaultExit
from paralm.judge.commands import main_judge

REPO = Path(__file__).resolve().parents[2]


def test_judge_and_api_packages_never_import_torch():
    code = ("import sys, paralm.judge.commands, paralm.judge.summary, paralm.eval.bootstrap; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_endpoint_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PARALM_JUDGE_BASE_URL", raising=False)
    pred = write_rows(tmp_path / "p.jsonl", make_rows(2))
    assert main_judge(["--predictions", str(pred), "--out", str(tmp_path / "o"), "--model", "m"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--base-url" in err and "PARALM_JUDGE_BASE_URL" in err and "\n" not in err


def test_bad_predictions_file_names_the_line(tmp_path, capsys):
    pred = tmp_path / "p.jsonl"
    pred.write_text('{"key": "a"}\n')
    assert main_judge(["--predictions", str(pred), "--out", str(tmp_path / "o"), "--base-url",
                       "http://127.0.0.1:9/v1", "--model", "m"]) == 2
    assert "p.jsonl:1" in capsys.readouterr().err


def test_outputs_and_min_success_rate_exit_status(tmp_path):
    pred = write_rows(tmp_path / "p.jsonl", make_rows(12))
    with FakeOpenAIServer(reply_fn=scripted_judge) as server:
        assert main_judge(judge_args(pred, tmp_path / "o", server, "--price-per-1k-prompt", "1.0")) == 0
        # rows 5 carries two ratings -> 11/12 judged, below a 0.95 bar: "nothing usable" (5) with the reason
        with pytest.raises(FaultExit) as stop:
            main_judge(judge_args(pred, tmp_path / "o2", server, "--min-success-rate", "0.95"))
    assert stop.value.exit_code == 5 and "11/12" in str(stop.value) and "conflicting_ratings" in str(stop.value)
    out = tmp_path / "o"
    assert {p.name for p in out.iterdir()} == {"judged.jsonl", "summary.json", "summary.md", "judge_cache.sqlite"}
    summary = read_json(out / "summary.json")
    assert summary["usage"]["cost_usd"] > 0 and summary["rubric"]["name"] == "reference_match"
    assert set(summary["by_type"]) == {"C", "CP", "DP"}
    assert summary["judged"] == 11 and summary["unjudged_reasons"] == {"parse:conflicting_ratings": 1}


def test_ablation_judge_calls_the_judge_with_config_objects_not_a_command_line(tmp_path, monkeypatch):
    import paralm.judge.commands as commands
    from paralm.api.chat_types import ClientConfig
    from paralm.runs.ablate.config import JudgeSettings
    from paralm.runs.ablate.judge import judge_predictions

    def no_parser(*args, **kwargs):
        raise AssertionError("library code built a command line")

    monkeypatch.setattr(commands, "build_parser", no_parser)
    pred = write_rows(tmp_path / "p.jsonl", make_rows(5))  # row 5 would need a re-ask (seed + 1)
    with FakeOpenAIServer(reply_fn=scripted_judge) as server:
        client = ClientConfig(base_url=server.base_url, model="judge-a", timeout_s=5, backoff_base_s=0.01,
                              backoff_max_s=0.05, concurrency=2)
        summary = judge_predictions(JudgeSettings(client=client), pred, tmp_path / "judge", seed=7)
        bodies = [e["body"] for e in server.chat_requests()]
    assert summary["n"] == 5 and summary["judged"] == 5 and summary["judge_model"] == "judge-a"
    assert {b["seed"] for b in bodies} == {7} and {b["model"] for b in bodies} == {"judge-a"}
    assert (tmp_path / "judge" / "judge_cache.sqlite").is_file()  # the command's default cache place
