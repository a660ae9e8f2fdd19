"""Ordinary mistakes end `paralm fit` with one line and a code from the exit-code table, not a traceback.

A wrong shard folder, a missing model folder, an unknown projector and a skip-rate stop used to come
as 60-130 lines (tracebacks, usage dumps) around the message. Now: the message as the last and only
error line (what, where, how to fix), exit 2 (or the stop's own code); `--debug` shows the traceback.
Run in-process: the same `run_lightning_cli` the console script calls, without its start-up per case.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from paralm.data.datamodule import MixtureDataModule
from paralm.fault.exits import EXIT_SKIP_RATE, EXIT_USER_ERROR, FaultExit
from paralm.lightning_cli import run_lightning_cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fit(monkeypatch, tmp_path, capfd):
    monkeypatch.setattr(sys, "argv", sys.argv[:1])
    monkeypatch.chdir(ROOT)

    def run(*extra: str) -> tuple[int, list[str]]:
        capfd.readouterr()
        code = run_lightning_cli(["fit", "--config", "experiments/debug_cpu.yaml", "--trainer.max_steps=1",
                                  f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_model_summary=false",
                                  *extra])
        out, err = capfd.readouterr()
        return code, [ln for ln in err.splitlines() if ln.strip()]

    return run


def _one_error_line(err: list[str], *words: str) -> None:
    assert not any("Traceback" in ln for ln in err), "\n".join(err)
    mine = [ln for ln in err if ln.startswith("paralm fit:")]
    assert len(mine) == 1 and mine[0] == err[-1], err
    assert all(w in mine[0] for w in words), mine[0]


def test_wrong_shard_folder_is_one_line_exit_2(fit):
    code, err = fit("--data.train_sources=[{name: general, path: data/demo/shards/nope, kind: general}]")
    assert code == EXIT_USER_ERROR
    _one_error_line(err, "data/demo/shards/nope", "paralm data pack")


def test_missing_model_folder_is_one_line_exit_2(fit):
    code, err = fit("--model.model.llm.config=null", "--model.model.llm.tokenizer=null",
                    "--model.model.llm.path=models/not-here")
    assert code == EXIT_USER_ERROR
    _one_error_line(err, "--model.model.llm.path models/not-here", "no such folder")


def test_unknown_projector_is_one_line_exit_2_and_debug_shows_the_traceback(fit):
    code, err = fit("--model.model.projector.name=nope")
    assert code == EXIT_USER_ERROR
    _one_error_line(err, "unknown projector 'nope'", "stack_mlp", "--debug")
    code, err = fit("--model.model.projector.name=nope", "--debug=true")
    assert code == EXIT_USER_ERROR and any("Traceback" in ln for ln in err) and "unknown projector" in err[-1]


def test_skip_rate_stop_from_the_data_code_keeps_its_code(fit, monkeypatch):
    def over_limit(self):
        raise FaultExit("skip rate 0.62 over data.max_skip_rate 0.5 (see runs/x/skips.jsonl)", EXIT_SKIP_RATE)

    monkeypatch.setattr(MixtureDataModule, "train_dataloader", over_limit)
    code, err = fit()
    assert code == EXIT_SKIP_RATE
    _one_error_line(err, "skip rate 0.62", "skips.jsonl")


def test_a_bug_still_shows_its_traceback(fit, monkeypatch):
    def bug(self):
        raise KeyError("a real bug")

    monkeypatch.setattr(MixtureDataModule, "train_dataloader", bug)
    with pytest.raises(KeyError):
        fit()


def test_unknown_option_keeps_the_parser_output_and_repeats_its_error_last(fit, capfd):
    with pytest.raises(SystemExit) as stop:
        fit("--trainer.max_stepz=3")
    err = capfd.readouterr().err.strip().splitlines()
    assert stop.value.code == EXIT_USER_ERROR
    assert any(ln.startswith("usage:") for ln in err)  # Lightning's parser output is kept
    assert err[-1].startswith("paralm fit: error:") and "--trainer.max_stepz" in err[-1] and "--help" in err[-1]
