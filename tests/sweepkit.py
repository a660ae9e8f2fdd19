"""Helpers shared by the sweep and launch tests (this module holds no tests).

Everything a run needs is built in the test's tmp dir: a tiny packed corpus (shardkit + the real
`pack`), an overlay YAML that points experiments/debug_cpu.yaml at it and keeps runs short, and the
environment for child processes (offline W&B, one thread per process, the venv's scripts on PATH).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import yaml
from shardkit import make_corpus

from paralm.data.pack import pack

REPO = Path(__file__).resolve().parents[1]
DEBUG_CONFIG = REPO / "experiments" / "debug_cpu.yaml"
LAUNCH = REPO / "paralm" / "launch.py"
BIN = Path(sys.executable).parent


def build_shards(tmp: Path, n: int = 24) -> Path:
    """n clips (about 1/5 in the val split) packed into one shard set; returns its folder."""
    corpus = make_corpus(tmp, n, seed=0)
    out = tmp / "shards"
    pack(corpus.records, corpus.audio_root, out)
    return out


def write_overlay(path: Path, shards: Path, trainer: dict | None = None, data: dict | None = None,
                  model: dict | None = None) -> Path:
    """A config overlay for debug_cpu.yaml: local shards, no workers, checkpoints every 2 steps."""
    source = {"name": "general", "path": str(shards), "kind": "general"}
    overlay = {
        "trainer": {"max_steps": 6, "val_check_interval": 2, "limit_val_batches": 1, "num_sanity_val_steps": 0,
                    "enable_model_summary": False, "logger": False,
                    "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"dirpath": str(path.parent / "unused_ckpt"),
                                                 "every_n_train_steps": 2, "save_top_k": -1, "save_last": True}}],
                    **(trainer or {})},
        "data": {"train_sources": [{**source, "split": "train"}], "val_sources": [{**source, "split": "val"}],
                 "num_workers": 0, "batch_size": 4, "samples_per_epoch": 64, **(data or {})},
    }
    if model:
        overlay["model"] = model
    path.write_text(yaml.safe_dump(overlay, sort_keys=False))
    return path


def write_sweep(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def fit_command(*configs: Path) -> list[str]:
    """The sweep command words for `paralm/launch.py fit --config ... ${args}` (W&B macros)."""
    words = ["${env}", "${interpreter}", "${program}", "fit"]
    for cfg in configs:
        words += ["--config", str(cfg)]
    return words + ["${args}"]


def child_env() -> dict[str, str]:
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests"), str(REPO), env.get("PYTHONPATH", "")])
    return env


def sweep_argv(sweep_file: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "paralm.cli", "sweep", str(sweep_file), "--out", str(out), "--poll", "0.2", *extra]


def read_state(out: Path) -> dict:
    path = out / "sweep_state.json"
    return json.loads(path.read_text()) if path.exists() else {"trials": []}


def wait_for(predicate, timeout: float, what: str, proc=None) -> None:
    """Poll `predicate` every 0.2 s; fail naming `what` (and the driver's output) on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"driver exited ({proc.returncode}) before {what}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
