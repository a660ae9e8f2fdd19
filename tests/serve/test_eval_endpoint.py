"""`paralm eval --endpoint` against `paralm serve`: the same answers as `paralm predict` on the same export
and items; a rerun is answered from the cache (0 requests); --compare pairs two systems item by item."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch
import yaml
from fitprobe import ROOT, run_paralm
from servekit import KEY
from trainkit import tiny_shards

from paralm.cli import main as cli_main
from paralm.data.prompts import PromptConfig
from paralm.dataclass_io import from_dict
from paralm.formats.predictions import read_predictions
from paralm.model import export as export_io
from paralm.model.config import SpeechLMConfig
from paralm.model.speech_lm import SpeechLM
from paralm.prompt_record import prompt_record
from paralm.serve.local_server import LocalServer

pytest.importorskip("fastapi")
MAX_NEW_TOKENS = 4
DEBUG = ROOT / "experiments" / "debug_cpu.yaml"


def debug_export(folder):
    """An export of the debug_cpu.yaml architecture (random weights, louder projector), so that
    `paralm predict --config experiments/debug_cpu.yaml --model.init_from` loads it."""
    cfg = from_dict(SpeechLMConfig, yaml.safe_load(DEBUG.read_text())["model"]["model"])
    torch.manual_seed(1)
    model = SpeechLM.from_config(cfg)
    with torch.no_grad():
        for param in model.projector.parameters():
            param.mul_(5.0)
    export_io.write(model, folder, prompt=prompt_record(PromptConfig(), [DEBUG]))
    (folder / "export_info.json").write_text(json.dumps({"global_step": 0}))
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval_endpoint")
    shards = tiny_shards(tmp / "data", n=10)
    export = debug_export(tmp / "export")
    overlay = tmp / "predict.yaml"
    overlay.write_text(f"data:\n  val_sources:\n    - {{name: general, path: {shards}, kind: general, split: val}}\n"
                       f"model:\n  generation: {{max_new_tokens: {MAX_NEW_TOKENS}}}\n")
    proc = run_paralm(["predict", "--config", str(DEBUG), "--config", str(overlay), "--data.predict_split", "val",
                       "--trainer.default_root_dir", str(tmp / "runs"), "--run_name", "p", "--model.init_from", str(export)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    predicted = read_predictions(tmp / "runs" / "p" / "predictions" / "val-step0.jsonl")
    return {"tmp": tmp, "shards": shards, "export": export, "predicted": predicted,
            "predicted_path": tmp / "runs" / "p" / "predictions" / "val-step0.jsonl"}


def eval_args(server, setup, out, *extra):
    return ["eval", "--endpoint", server.base_url, "--model", "debug", "--shards", str(setup["shards"]),
            "--split", "val", "--out", str(out), "--max-tokens", str(MAX_NEW_TOKENS), "--api-key-env", "EVAL_TEST_KEY",
            *extra]


def run_eval(server, setup, out, *extra):
    return run_paralm(eval_args(server, setup, out, *extra))


def test_eval_against_paralm_serve_equals_paralm_predict_and_a_rerun_sends_nothing(setup, monkeypatch):
    monkeypatch.setenv("EVAL_TEST_KEY", KEY)
    out = setup["tmp"] / "eval"
    with LocalServer(setup["export"], ["--model-name", "debug", "--api-key-env", "EVAL_TEST_KEY"],
                     env={"EVAL_TEST_KEY": KEY}, key=KEY) as server:
        first = run_eval(server, setup, out, "--compare", str(setup["predicted_path"]))
        assert first.returncode == 0, first.stderr[-3000:]
        err = io.StringIO()
        with contextlib.redirect_stderr(err):  # the rerun in this process: same command, no process start
            assert cli_main(eval_args(server, setup, out)) == 0
    rows = read_predictions(out / "predictions.jsonl")
    expected = {(r.key, r.question): (r.answer, r.reference, r.type) for r in setup["predicted"]}
    assert len(rows) == len(expected) > 0
    assert {(r.key, r.question): (r.answer, r.reference, r.type) for r in rows} == expected
    usage = json.loads((out / "eval_summary.json").read_text())["usage"]
    assert usage["requests_sent"] == 0 and usage["cache_hits"] == len(rows)  # the rerun
    scores = json.loads((out / "scores.json").read_text())
    assert scores["n"] == len(rows)
    compare = json.loads((out / "compare.json").read_text())
    assert compare["same_answer"] == len(rows) and compare["token_f1"]["difference"]["estimate"] == 0.0
    assert "0 requests sent" in err.getvalue()


def test_eval_refuses_a_bad_metadata_source_in_one_line(setup):
    proc = run_paralm(["eval", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--shards", str(setup["shards"]),
                       "--out", str(setup["tmp"] / "x"), "--metadata-source", "oracle"])
    assert proc.returncode == 2 and "--metadata-source: unknown metadata source 'oracle'" in proc.stderr
