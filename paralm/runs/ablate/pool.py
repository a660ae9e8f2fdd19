"""`paralm ablate --jobs N`: train and evaluate N (training signature, seed) pairs at the same time.

Why: the pairs of an ablation are independent (each has its own seed, run folder and result folder),
and one pair rarely fills a machine: a tiny model's small matrices use a second thread poorly (on the
2-core demo box two one-thread pairs side by side make 1.12x the steps per second of one pair on two
threads, benchmarks/demo_jobs.md), and on a GPU node "one GPU per run" means eight pairs on eight GPUs.

Each pair runs as its own process, the same command a slurm array task runs:
    paralm ablate FILE [the user's choices] --jobs 1 --pair-index I
so a pair trains and is evaluated exactly as it would be alone (same `paralm fit` path, same seed; the
result equals `--jobs 1`, tested). Each process gets a slot: on GPUs its own `devices` GPUs through
CUDA_VISIBLE_DEVICES, on a CPU `OMP_NUM_THREADS=train.threads`. Output goes to
`<out>/logs/<rows>-seed<k>.log`; `<out>/logs/pairs.jsonl` records each pair's slot, pid, start, end
and exit code. A pair that fails does not stop the others; the command then exits with the failed
pair's code, naming its log. The children die with this process (kill -9 included; a rerun resumes
them from their checkpoints) and are stopped (SIGTERM, then SIGKILL) when it stops on an error or ^C;
a preemption notice (SIGTERM, SIGUSR1) is passed on, so each running fit checkpoints before it ends.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from paralm.fault.exits import EXIT_TABLE, FaultExit, UserError, preempted_exit_code
from paralm.fault.preemption import SignalFlag, signal_name
from paralm.runs.child_process import LoggedChild, log_tail

POOL_LOG = "pairs.jsonl"


@dataclass(frozen=True)
class PairJob:
    """One (training signature, seed) pair: its index in the ablation's pair list and its rows."""

    index: int
    names: tuple[str, ...]
    seed: int

    @property
    def label(self) -> str:
        return f"{'+'.join(self.names)}-seed{self.seed}"


def visible_gpus() -> list[str]:
    """The GPU ids this process may hand out (CUDA_VISIBLE_DEVICES if set, else every device torch sees)."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return (listed or [str(i) for i in range(count)])[:count]


def slot_environments(jobs: int, devices: int, threads: int, gpus: list[str]) -> list[dict[str, str]]:
    """Environment additions of each of `jobs` slots: disjoint GPU sets, or CPU threads when no GPU."""
    if not gpus:
        return [{"OMP_NUM_THREADS": str(threads)} for _ in range(jobs)]
    if len(gpus) < jobs * devices:
        raise UserError(f"--jobs {jobs} x --devices {devices} needs {jobs * devices} GPUs; "
                        f"{len(gpus)} visible ({','.join(gpus)})")
    return [{"CUDA_VISIBLE_DEVICES": ",".join(gpus[s * devices:(s + 1) * devices])} for s in range(jobs)]


def run_pool(pairs: list[PairJob], command: Callable[[PairJob], list[str]], slots: list[dict[str, str]],
             log_dir: Path, poll_s: float = 0.5, stop_grace_s: float = 120.0) -> None:
    """Run `command(pair)` for every pair, at most len(slots) at a time; raise FaultExit if any failed.

    A preemption notice to this process (SIGTERM, SIGUSR1) is passed on to every running pair, whose fit
    writes a checkpoint at its next step boundary (up to `stop_grace_s`); the command then exits 128 + N.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    waiting, free = list(pairs), list(range(len(slots)))
    running: dict[int, tuple[PairJob, LoggedChild, float]] = {}
    failed: list[tuple[PairJob, int, Path]] = []
    notice = SignalFlag((signal.SIGTERM, signal.SIGUSR1))
    notice.install()
    done = 0
    try:
        while (waiting or running) and notice.signum is None:
            while waiting and free:
                pair, slot = waiting.pop(0), free.pop(0)
                env = {**os.environ, **slots[slot]}
                child = LoggedChild(command(pair), None, log_dir / f"{pair.label}.log", env, die_with_parent=True)
                running[slot] = (pair, child, time.time())
                print(f"ablate: {pair.label} started in slot {slot} (pid {child.pid}; "
                      f"log {child.log_path})", flush=True)
            time.sleep(poll_s)
            for slot, (pair, child, start) in list(running.items()):
                code = child.poll()
                if code is None:
                    continue
                del running[slot]
                free.append(slot)
                done += 1
                _finished(log_dir, pair, slot, child, start, code, f"[{done}/{len(pairs)}]", failed)
    finally:  # a notice, an error or ^C: stop what still runs (SIGTERM lets each fit checkpoint first)
        for _pair, child, _start in running.values():
            child.stop(stop_grace_s, first=notice.signum or signal.SIGTERM)
        notice.restore()
    if notice.signum is not None:
        raise FaultExit(f"ablate: {signal_name(notice.signum)} received; {len(running)} running pair(s) were "
                        "asked to checkpoint and stopped; rerun the same command to resume them",
                        preempted_exit_code(notice.signum))
    if failed:
        pair, code, log = failed[0]
        listed = ", ".join(f"{p.label} (exit {c})" for p, c, _ in failed)
        known = {int(c) for c, _ in EXIT_TABLE if str(c).isdigit()}
        raise FaultExit(f"{len(failed)} of {len(pairs)} pair(s) failed: {listed}; see {log} "
                        "(finished pairs are kept: rerun the same command to retry the others)",
                        code if code in known and code != 0 else 1)


def _finished(log_dir: Path, pair: PairJob, slot: int, child: LoggedChild, start: float, code: int, count: str,
              failed: list) -> None:
    """Record and print one ended pair; a failure is remembered with the end of its log."""
    _record(log_dir, pair, slot, child, start, code)
    seconds = time.time() - start
    if code == 0:
        print(f"ablate: {count} {pair.label} done in {seconds:.0f} s", flush=True)
        return
    failed.append((pair, code, child.log_path))
    print(f"ablate: {count} {pair.label} FAILED (exit {code}) after {seconds:.0f} s; "
          f"end of {child.log_path}:\n{log_tail(child.log_path)}", flush=True)


def _record(log_dir: Path, pair: PairJob, slot: int, child: LoggedChild, start: float, code: int) -> None:
    row = {"pair": pair.label, "index": pair.index, "rows": list(pair.names), "seed": pair.seed, "slot": slot,
           "pid": child.pid, "started": round(start, 3), "ended": round(time.time(), 3), "exit_code": code,
           "log": str(child.log_path)}
    with open(log_dir / POOL_LOG, "a") as f:
        f.write(json.dumps(row) + "\n")
