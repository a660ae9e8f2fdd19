"""Helpers for the fault and security tests (no tests here): shard sets, config overlays, a subprocess
runner for `paralm fit`, run folders (`Case`) and the shared uninterrupted reference run.

The callbacks the runs load (step logs, fault injection) are in faultcallbacks.py.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from fake_openai_server import FakeOpenAIServer
from shardkit import corrupt_shards, make_corpus

REPO = Path(__file__).resolve().parents[1]
DEBUG_CONFIG = REPO / "experiments" / "debug_cpu.yaml"
# damage that reaches training as counted skips (plus the truncated and the empty shard corrupt_shards adds)
SHARD_FAULTS = {"corrupt_audio": 1, "bad_json": 1, "unsupported_member": 1, "unsafe_member_name": 1}


# ---- data ----------------------------------------------------------------------------------------------
def build_shards(root: Path, n: int = 64, damaged: bool = True) -> Path:
    """A packed shard set of n short clips (80 % train, 20 % val); damaged: with seeded faults."""
    from paralm.data.pack import pack

    corpus = make_corpus(root, n, seed=3, durations=(0.3, 0.8))
    clean = root / "clean"
    pack(corpus.records, corpus.audio_root, clean, overwrite=True)
    if not damaged:
        return clean
    return corrupt_shards(clean, root / "damaged", seed=1, faults=dict(SHARD_FAULTS), n_shards=8).out_dir


# ---- configs -------------------------------------------------------------------------------------------
def callback(cls: str, **init_args) -> dict:
    """A trainer.callbacks entry; cls is `Name` (this module) or a dotted class path."""
    path = cls if "." in cls else f"faultcallbacks.{cls}"
    return {"class_path": path, "init_args": init_args}


def overlay(path: Path, shards: Path, ckpt_dir: Path, callbacks: list[dict], max_steps: int = 100,
            ckpt_every: int = 10, workers: int = 0, **sections) -> Path:
    """Write a config overlay for experiments/debug_cpu.yaml: tiny batches, checkpoints every
    `ckpt_every` steps into ckpt_dir, validation every 25 steps, the given extra callbacks."""
    source = {"name": "general", "path": str(shards), "kind": "general"}
    cfg = {
        "trainer": {
            "max_steps": max_steps, "val_check_interval": 25, "check_val_every_n_epoch": None,
            "limit_val_batches": 2, "num_sanity_val_steps": 0, "logger": False, "log_every_n_steps": 5,
            "enable_model_summary": False, "default_root_dir": str(path.parent / "runs"),
            "callbacks": [callback("lightning.pytorch.callbacks.ModelCheckpoint", dirpath=str(ckpt_dir),
                                   every_n_train_steps=ckpt_every, save_top_k=-1), *callbacks],
        },
        "data": {
            "train_sources": [{**source, "split": "train"}], "val_sources": [{**source, "split": "val"}],
            "batch_size": 2, "samples_per_epoch": 48, "num_workers": workers, "seed": 5, "max_skip_rate": 0.6,
        },
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# ---- running `paralm fit` ------------------------------------------------------------------------------
def subprocess_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "PL_", "LT_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO / "tests"), str(REPO)]), OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", WANDB_MODE="offline", WANDB_SILENT="true",
               HF_HUB_OFFLINE="1", PYTHONHASHSEED="0")
    env.update(extra)
    return env


@dataclass
class Run:
    """A finished `paralm` subprocess."""

    returncode: int
    stderr: str
    wall_s: float


class Launch:
    """A started `paralm <args>` subprocess; `.wait()` gives a Run. Start several, then wait, to overlap them."""

    def __init__(self, cwd: Path, args: list[str], env: dict | None = None, timeout: float = 300) -> None:
        cwd.mkdir(parents=True, exist_ok=True)
        self.log = cwd / f"stderr-{time.monotonic_ns()}.txt"
        self.timeout = timeout
        self.started = time.monotonic()
        with open(self.log, "wb") as err:
            # own session: a fault that kills its whole process group (all ranks) spares pytest
            self.proc = subprocess.Popen([sys.executable, "-m", "paralm.cli", *map(str, args)], cwd=cwd,
                                         env=env or subprocess_env(), stdout=subprocess.DEVNULL, stderr=err,
                                         start_new_session=True)

    def wait(self) -> Run:
        try:
            self.proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"paralm run timed out; stderr tail:\n{self.log.read_text()[-3000:]}") from None
        return Run(self.proc.returncode, self.log.read_text(errors="replace"), time.monotonic() - self.started)


def fit(cwd: Path, *configs: Path, args: tuple = (), env: dict | None = None) -> Launch:
    """Start `paralm fit --config experiments/debug_cpu.yaml --config <overlays> <args>` in cwd."""
    argv = ["fit", "--config", DEBUG_CONFIG]
    for c in configs:
        argv += ["--config", c]
    return Launch(cwd, [*argv, *args], env=env)


def tail(run: Run, n: int = 3000) -> str:
    return run.stderr[-n:]


# ---- reading what a run left ---------------------------------------------------------------------------
def read_steps(path: Path) -> dict[int, dict]:
    """step -> the StepLog record (a record cut off by a kill is ignored; a later step overwrites)."""
    out = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        out[rec["step"]] = rec
    return out


def load_ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def max_abs_diff(a, b) -> float:
    """Largest elementwise difference between two nested structures of tensors (inf if shapes/keys differ)."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return math.inf
        return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return math.inf
        return max([max_abs_diff(a[k], b[k]) for k in a] or [0.0])
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return math.inf
        return max([max_abs_diff(x, y) for x, y in zip(a, b, strict=True)] or [0.0])
    return 0.0 if a == b else math.inf


def ckpt_at(folder: Path, step: int) -> Path:
    (path,) = [p for p in folder.glob(f"*step={step}.ckpt")]
    return path


# ---- one training case: its folder, config overlays, launches and results -------------------------------
class Case:
    """A run folder with its checkpoint folder, step and validation logs; with `judge_url`, every second
    validation is also judged by the JudgeEvalCallback (cache in <folder>/judge/judge_cache.sqlite)."""

    def __init__(self, folder: Path, shards: Path, judge_url: str | None = None, per_rank: bool = False) -> None:
        self.dir, self.shards, self.judge_url = folder, shards, judge_url
        folder.mkdir(parents=True, exist_ok=True)
        self.ckpt = folder / "ckpt"
        self.steps_file = folder / ("steps.rank{rank}.jsonl" if per_rank else "steps.jsonl")
        self.validations_file = folder / "validations.jsonl"
        self.judge_dir = folder / "judge"

    def config(self, name: str, *faults: dict, **kw) -> Path:
        logs = [callback("StepLog", path=str(self.steps_file)),
                callback("ValidationLog", path=str(self.validations_file))]
        if self.judge_url:
            logs.append(callback("callbacks.JudgeEvalCallback", every_n_validations=2, out_dir=str(self.judge_dir),
                                 at_fit_end=False, judge_base_url=self.judge_url, judge_model="judge-a",
                                 concurrency=2, timeout_s=10.0))
        return overlay(self.dir / f"{name}.yaml", self.shards, self.ckpt, [*logs, *faults], **kw)

    def validated_at(self) -> list[int]:
        lines = self.validations_file.read_text().splitlines() if self.validations_file.exists() else []
        return [json.loads(line)["validated_at"] for line in lines]

    def judge_cache(self) -> dict[str, tuple]:
        """key -> (model, text, prompt tokens, completion tokens, finish reason, tag) of the judge cache."""
        with sqlite3.connect(self.judge_dir / "judge_cache.sqlite") as db:
            rows = db.execute("SELECT key, model, text, prompt_tokens, completion_tokens, finish_reason, tag "
                              "FROM completions").fetchall()
        return {r[0]: r[1:] for r in rows}

    def fit(self, name: str, *faults: dict, args: tuple = (), env: dict | None = None, **kw) -> Launch:
        return fit(self.dir, self.config(name, *faults, **kw), args=args, env=env)

    def steps(self, rank: int = 0) -> dict[int, dict]:
        return read_steps(Path(str(self.steps_file).format(rank=rank)))

    def checkpoint(self, step: int) -> dict:
        return load_ckpt(ckpt_at(self.ckpt, step))


def shared(tmp_path_factory, name: str, build) -> Path:
    """A folder built once per test session by `build(folder)` and reused by every module that asks."""
    folder = tmp_path_factory.getbasetemp() / name
    done = folder / ".built"
    if not done.exists():
        folder.mkdir(parents=True, exist_ok=True)
        build(folder)
        done.touch()
    return folder


def shared_shards(tmp_path_factory) -> Path:
    return shared(tmp_path_factory, "fault_shards", build_shards) / "damaged"


def judge_reply(body: dict) -> str:
    """A fake judge: a JSON verdict whose rating depends on the judged text (so caches differ if answers do)."""
    text = body["messages"][-1]["content"]
    return json.dumps({"rationale": "compared with the reference", "rating": sum(map(ord, text)) % 6})


def judge_server() -> FakeOpenAIServer:
    return FakeOpenAIServer(reply_fn=judge_reply)


def start_reference(tmp_path_factory) -> tuple[Case, Callable[[], None]]:
    """(case, wait) for the uninterrupted 100-step run (judged at steps 50 and 100) every kill/preemption
    test is compared with.

    The run starts now unless an earlier module already made it, so callers overlap it with their own
    runs; `wait()` blocks until it has finished."""
    folder = tmp_path_factory.getbasetemp() / "fault_reference"
    done = folder / ".built"
    if done.exists():
        return Case(folder, shared_shards(tmp_path_factory)), lambda: None
    server = judge_server().start()
    case = Case(folder, shared_shards(tmp_path_factory), judge_url=server.base_url)
    launch = case.fit("reference")

    def wait() -> None:
        try:
            run = launch.wait()
        finally:
            server.stop()
        assert run.returncode == 0, tail(run)
        done.touch()

    return case, wait
