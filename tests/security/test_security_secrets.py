"""Secrets: with canary API keys in the environment, a training run with W&B (offline) and the judge
callback, and a standalone `paralm judge`, leave no trace of the keys in any file they write (W&B run
files, checkpoints with their hparams, saved configs, logs, judge caches and reports), although the
judge really sent the key. A key written into a config file or passed as a flag is refused, and the
refusal does not echo it.
"""

import base64
import os
import secrets
import sys
from pathlib import Path

import pytest
from faultkit import (
    DEBUG_CONFIG,
    Case,
    callback,
    judge_reply,
    overlay,
    shared_shards,
    subprocess_env,
    tail,
)

from paralm.api.fake.server import FakeOpenAIServer
from paralm.judge.commands import main_judge
from paralm.lightning_cli import run_lightning_cli

CANARIES = {
    "OPENAI_API_KEY": f"sk-canary{secrets.token_hex(16)}",
    "HF_TOKEN": f"hf_canary{secrets.token_hex(12)}",
    "PARALM_JUDGE_KEY": f"canary-{secrets.token_hex(16)}",
}


def _needles(value: str) -> list[bytes]:
    raw = value.encode()
    return [raw, base64.b64encode(raw), value.encode("utf-16-le")]


def _leaks(folder: Path) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path.relative_to(folder)}: {name}" for name, value in CANARIES.items()
                      if any(n in data for n in _needles(value))]
    return found


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("secrets")
    wandb_dirs = {k: str(root / "run" / "wandb_home" / k) for k in ("WANDB_DIR", "WANDB_CONFIG_DIR",
                                                                      "WANDB_CACHE_DIR", "WANDB_DATA_DIR")}
    for d in wandb_dirs.values():
        os.makedirs(d, exist_ok=True)
    env = subprocess_env(**CANARIES, **wandb_dirs)
    logger = {"class_path": "lightning.pytorch.loggers.WandbLogger",
              "init_args": {"offline": True, "project": "paralm-secrets", "save_dir": str(root / "run" / "wandb")}}
    with FakeOpenAIServer(reply_fn=judge_reply) as server:
        case = Case(root / "run", shared_shards(tmp_path_factory), judge_url=server.base_url)
        run = case.fit("train", max_steps=50, trainer={"logger": logger, "log_every_n_steps": 5}, env=env).wait()
        auth = [entry["headers"].get("authorization", "") for entry in server.log]
    return root, case, run, auth


def test_train_and_judge_run_used_the_key_but_wrote_it_nowhere(trained):
    root, case, run, auth = trained
    assert run.returncode == 0, tail(run)
    assert auth and all(a == f"Bearer {CANARIES['OPENAI_API_KEY']}" for a in auth)  # the key was really used
    written = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert any("offline-run-" in p for p in written), "no W&B offline run was written"
    assert any(p.endswith(".ckpt") for p in written) and any(p.endswith("config.yaml") for p in written)
    assert any(p.endswith("judge_cache.sqlite") for p in written) and any(p.endswith("summary.md") for p in written)
    assert any(p.startswith("run/stderr-") for p in written)  # the run's log
    assert _leaks(root) == []


def test_standalone_judge_with_the_key_in_env_writes_it_nowhere(tmp_path, monkeypatch):
    from judgekit import make_rows, write_rows

    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    pred = write_rows(tmp_path / "p.jsonl", make_rows(6))
    with FakeOpenAIServer(reply_fn=judge_reply) as server:
        code = main_judge(["--predictions", str(pred), "--out", str(tmp_path / "out"), "--base-url", server.base_url,
                           "--model", "judge-a", "--timeout", "5"])
        assert code == 0 and server.log[0]["headers"]["authorization"] == f"Bearer {CANARIES['OPENAI_API_KEY']}"
    assert (tmp_path / "out" / "judge_cache.sqlite").exists()
    assert _leaks(tmp_path) == []


def test_the_leak_scan_finds_a_key_that_was_written(tmp_path):
    (tmp_path / "oops.json").write_text(f'{{"header": "{CANARIES["HF_TOKEN"]}"}}')
    (tmp_path / "oops.b64").write_bytes(base64.b64encode(CANARIES["PARALM_JUDGE_KEY"].encode()))
    assert sorted(_leaks(tmp_path)) == ["oops.b64: PARALM_JUDGE_KEY", "oops.json: HF_TOKEN"]


@pytest.mark.parametrize("where", ["config_file", "flag"])
def test_a_key_in_a_config_file_or_flag_is_refused_without_echoing_it(tmp_path, tmp_path_factory, capfd, where,
                                                                       monkeypatch):
    monkeypatch.setattr(sys, "argv", sys.argv[:1])  # the CLI rewrites sys.argv; give it back afterwards
    key = CANARIES["OPENAI_API_KEY"]
    judge = callback("callbacks.JudgeEvalCallback", judge_base_url="http://127.0.0.1:9/v1",
                     judge_model=key if where == "config_file" else "judge-a")
    cfg = overlay(tmp_path / "o.yaml", shared_shards(tmp_path_factory), tmp_path / "ckpt", [judge], max_steps=1)
    extra = ["--run_name", key] if where == "flag" else []
    code = run_lightning_cli(["fit", "--config", str(DEBUG_CONFIG), "--config", str(cfg), *extra])
    out, err = capfd.readouterr()
    assert code == 2
    assert "refusing secret value" in err and ("judge_model" if where == "config_file" else "run_name") in err
    assert key not in out + err
    assert not (tmp_path / "ckpt").exists() and not (tmp_path / "runs").exists()
