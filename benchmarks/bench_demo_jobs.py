"""Demo training throughput: one pair on two threads (the old demo setting) vs two one-thread pairs at once.

Why: `experiments/ablation_demo.yaml` used `threads: 2` (one pair at a time on both cores of the 2-core
target box); it now says `threads: 1, jobs: 2` (paralm/runs/ablate/pool.py). This measures the choice on
the demo's own training: each configuration runs `paralm fit` on experiments/demo/model.yaml (the demo
model and corpus, the general source, cached encoder states, no workers: what an ablation pair runs) and
a clock callback records the steps after a warm-up. Figures are aggregate optimizer steps per second:

    A  one process, 2 torch threads              (the old demo setting; the baseline)
    B  one process, 1 thread                     (one slot of the new setting, alone)
    C  two processes at once, 1 thread each       (the new setting: steps of both / their common span)

    python benchmarks/bench_demo_jobs.py [--steps 80] [--out benchmarks/demo_jobs.md]

Run it on an otherwise idle machine; ratios are against A measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import lightning.pytorch as pl

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WARMUP = 5


class StepClock(pl.Callback):
    """Writes {"steps", "start", "end"} (time.time()) of the steps after `warmup` to `out` at the end of fit."""

    def __init__(self, out: str, warmup: int = WARMUP) -> None:
        self.out, self.warmup, self.start = out, warmup, None
        self.losses: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup and self.start is None:
            self.start = time.time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))

    def on_train_end(self, trainer, pl_module) -> None:
        Path(self.out).write_text(json.dumps({"steps": trainer.global_step - self.warmup, "start": self.start,
                                              "end": time.time(), "losses": self.losses}))


def _fit(work: Path, name: str, steps: int, threads: int, extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, Path]:
    clock = work / f"{name}.json"
    command = [str(Path(sys.executable).parent / "paralm"), "fit", "--config", "experiments/demo/model.yaml",
               "--trainer.max_steps", str(steps + WARMUP), "--trainer.logger", "false",
               "--trainer.enable_checkpointing", "false", "--trainer.default_root_dir", str(work / "runs"),
               "--run_name", name, "--data.num_workers", "0", "--data.feature_cache", str(work / "features"),
               "--trainer.callbacks+=bench_demo_jobs.StepClock", f"--trainer.callbacks.init_args.out={clock}", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": f"{HERE}{os.pathsep}{ROOT}",
           "WANDB_MODE": "disabled"}
    log = open(work / f"{name}.log", "w")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), clock


def _wait(procs: list[tuple[subprocess.Popen, Path]]) -> list[dict]:
    try:
        for proc, _ in procs:
            if proc.wait() != 0:
                raise SystemExit(f"benchmark: a fit failed (exit {proc.returncode}); see its log")
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
    return [json.loads(clock.read_text()) for _, clock in procs]


def _rate(clocks: list[dict]) -> float:
    """Steps of all processes over their common span (first measured start to last end)."""
    span = max(c["end"] for c in clocks) - min(c["start"] for c in clocks)
    return sum(c["steps"] for c in clocks) / span


def measure(steps: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_demo_jobs_") as tmp:
        work = Path(tmp)
        _wait([_fit(work, "fill", 1, 2)])  # encoder states cached once, outside every measurement
        a = _rate(_wait([_fit(work, "a", steps, 2)]))
        b = _rate(_wait([_fit(work, "b", steps, 1)]))
        c = _rate(_wait([_fit(work, "c0", steps, 1), _fit(work, "c1", steps, 1)]))
    return {"A": a, "B": b, "C": c}


def report(rates: dict, steps: int, load: float) -> str:
    rows = [("A", "one process, 2 threads (old demo setting)"), ("B", "one process, 1 thread"),
            ("C", "two processes at once, 1 thread each (new demo setting)")]
    lines = [
        "# Demo training throughput: `threads: 2` vs `threads: 1, jobs: 2`", "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC with `python benchmarks/bench_demo_jobs.py "
        f"--steps {steps}` on {os.cpu_count()} cores (load average {load:.2f} at start): `paralm fit` on "
        f"experiments/demo/model.yaml, {steps} steps after {WARMUP} warm-up steps, batch 16, cached encoder "
        "states, no dataloader workers.", "",
        "| configuration | optimizer steps / s (all processes) | vs A |", "|---|---|---|",
        *[f"| {key}: {text} | {rates[key]:.2f} | {rates[key] / rates['A']:.2f}x |" for key, text in rows], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=80, help="measured steps per process (after the warm-up)")
    p.add_argument("--out", default=str(HERE / "demo_jobs.md"), help="markdown output")
    args = p.parse_args(argv)
    load = os.getloadavg()[0]
    text = report(measure(args.steps), args.steps, load)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
