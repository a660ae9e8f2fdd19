"""The sweep's journal: every trial, its parameters, config hash, attempts and outcome, in one JSON file.

`sweep_state.json` in the sweep folder is rewritten whole and atomically (temp file, fsync, rename)
after every change, so a driver killed at any moment leaves either the previous or the new state.
A restarted driver reads it back: finished, stopped and failed trials are never run again; a trial
still marked `running` was interrupted and is resumed from its last checkpoint. The file also pins
the sweep YAML by its sha256: restarting with an edited YAML is refused instead of mixing two sweeps.

Trial statuses: running (started, not ended), finished, stopped (ended early by hyperband, its metric
history is real and counts), failed (non-zero exit that was not an interruption).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from paralm.formats.jsonl import write_text_atomic

STATE_NAME = "sweep_state.json"
# a trial folder's layout, shared by the driver and the trial's callback
TRIAL_FILE = "trial.json"
METRICS_FILE = "metrics.jsonl"
STOP_FILE = "STOP"
RANKS_DIR = "ranks"
CHECKPOINT_DIR = "checkpoints"
ENDED = ("finished", "stopped", "failed")
STATUSES = ("running", *ENDED)
# trial status -> the W&B run state the search engine should see (stopped runs keep their real metric)
RUN_STATE = {"running": "running", "finished": "finished", "stopped": "finished", "failed": "failed"}


def plain(value: Any) -> Any:
    """Python scalars/lists/dicts only (the bayes search hands out numpy floats)."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def config_hash(command: list[str], cwd: Path) -> str:
    """sha256 of the resolved trial arguments: the command words plus the bytes of every `--config` file.

    Paths of the interpreter are left out (the same trial on another machine has the same hash).
    """
    words, files = [], {}
    for i, word in enumerate(command):
        words.append(word)
        target = None
        if word == "--config" and i + 1 < len(command):
            target = command[i + 1]
        elif word.startswith("--config="):
            target = word.split("=", 1)[1]
        if target is not None:
            path = (cwd / target) if not Path(target).is_absolute() else Path(target)
            files[target] = file_sha256(path) if path.is_file() else "missing"
    blob = json.dumps({"args": words, "config_files": files}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class Trial:
    """One trial of the sweep.

    Args:
        id: short name, also the run folder's prefix ("t003").
        params: swept values, CLI key -> value.
        config_hash: sha256 of the resolved trial arguments (see `config_hash`).
        dir: the trial's run folder, relative to the sweep folder.
        status: running | finished | stopped | failed.
        attempts: one dict per launch: started, ended, exit_code, resume_from, pgid, command.
        history: the sweep metric per validation, [{"_step": global step, <metric>: value}, ...].
        stop_requested: hyperband asked this trial to stop.
    """

    id: str
    params: dict
    config_hash: str
    dir: str
    status: str = "running"
    attempts: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    stop_requested: bool = False

    def best(self, metric: str | None, goal: str) -> float | None:
        values = [h[metric] for h in self.history if metric and isinstance(h.get(metric), (int, float))]
        if not values:
            return None
        return min(values) if goal == "minimize" else max(values)

    def last(self, metric: str | None) -> float | None:
        values = [h[metric] for h in self.history if metric and isinstance(h.get(metric), (int, float))]
        return values[-1] if values else None

    def sweep_run(self, metric: str | None):
        """This trial as the `sweeps` package's SweepRun (pydantic v2: pass the aliased field names)."""
        from paralm.runs.sweep.spec import import_sweeps

        sweeps = import_sweeps()
        summary = self.history[-1] if self.history else {}
        return sweeps.SweepRun(
            name=self.id,
            state=RUN_STATE[self.status],
            config={k: {"value": v} for k, v in self.params.items()},
            summaryMetrics=dict(summary),
            sampledHistory=[dict(h) for h in self.history],
            stopped=self.status == "stopped",
        )


class SweepStateError(ValueError):
    """The sweep folder holds a different sweep, or its state file is damaged."""


class SweepState:
    """The journal of one sweep folder (see the module docstring)."""

    def __init__(self, out_dir: Path, sweep: dict, trials: list[Trial]) -> None:
        self.out_dir = Path(out_dir)
        self.sweep = sweep
        self.trials = trials

    @property
    def path(self) -> Path:
        return self.out_dir / STATE_NAME

    @classmethod
    def open(cls, out_dir: str | Path, name: str, yaml_path: Path, yaml_sha256: str, seed: int) -> SweepState:
        """Load the folder's state, or start one; refuses a folder that belongs to another sweep file."""
        out_dir = Path(out_dir)
        path = out_dir / STATE_NAME
        if not path.exists():
            state = cls(out_dir, {"name": name, "file": str(yaml_path), "sha256": yaml_sha256, "seed": seed,
                                  "created": time.time()}, [])
            state.save()
            return state
        try:
            data = json.loads(path.read_text())
            trials = [Trial(**t) for t in data["trials"]]
        except (ValueError, KeyError, TypeError) as err:
            raise SweepStateError(f"{path}: unreadable sweep state ({err})") from err
        if data["sweep"]["sha256"] != yaml_sha256:
            raise SweepStateError(
                f"{path} belongs to a sweep file with sha256 {data['sweep']['sha256'][:12]}..., but "
                f"{yaml_path} now has {yaml_sha256[:12]}...: it was edited; use a new --out folder")
        return cls(out_dir, data["sweep"], trials)

    def save(self) -> None:
        data = {"version": 1, "sweep": self.sweep, "trials": [asdict(t) for t in self.trials]}
        write_text_atomic(self.path, json.dumps(data, indent=1, sort_keys=False) + "\n")

    def new_trial(self, params: dict, config_hash_: str) -> Trial:
        index = len(self.trials)
        trial = Trial(id=f"t{index:03d}", params=plain(params), config_hash=config_hash_,
                      dir=f"t{index:03d}-{config_hash_[:8]}")
        self.trials.append(trial)
        self.save()
        return trial

    def trial_dir(self, trial: Trial) -> Path:
        return self.out_dir / trial.dir

    def interrupted(self) -> list[Trial]:
        return [t for t in self.trials if t.status == "running"]

    def sweep_runs(self, metric: str | None) -> list:
        return [t.sweep_run(metric) for t in self.trials]
