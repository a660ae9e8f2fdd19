"""`paralm sweep sweeps/X.yaml --count N`: run a W&B sweep YAML with no W&B server.

The search is W&B's own engine (the `sweeps` package: grid, random, bayes, and hyperband early
termination), so a YAML behaves the same here as under `wandb agent`. Trials run one after another,
each as its own process from the YAML's command (macros expanded as the agent does, see
sweep_spec.py), each a W&B offline run in its own folder `<out>/<trial>-<config hash>/`.

While a trial runs, the driver reads the metric history the trial writes after each validation
(callbacks/sweep_trial.py) and asks `sweeps.stop_runs` whether hyperband would end it; if so it writes the
trial's STOP file and the trial stops at its next validation. `--count` is the total number of trials
of the sweep: a restarted driver continues the same journal (state.py), runs no ended trial
again and resumes an interrupted one from its last intact checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from paralm.fault.exits import EXIT_NOTHING_USABLE, EXIT_USER_ERROR
from paralm.formats.jsonl import write_text_atomic
from paralm.runs.sweep.metrics import expected_metrics, metric_problem, sweep_metric_problem
from paralm.runs.sweep.spec import SweepSpec, SweepSpecError, import_sweeps
from paralm.runs.sweep.state import (
    STOP_FILE,
    TRIAL_FILE,
    SweepState,
    SweepStateError,
    Trial,
    config_hash,
    plain,
)
from paralm.runs.sweep.table import as_csv, as_markdown, as_text, table_rows
from paralm.runs.sweep.trial import (
    TrialProcess,
    end_orphan,
    exit_was_interruption,
    latest_checkpoint,
    read_history,
)

CALLBACK = "callbacks.sweep_trial.SweepTrialCallback"
LOGGER = "lightning.pytorch.loggers.WandbLogger"


@dataclass
class SweepOptions:
    """How `paralm sweep` runs a sweep file.

    Args:
        sweep_file: the W&B sweep YAML.
        count: total trials of the sweep (None: the grid size; required for random and bayes).
        out: sweep folder (journal, trial folders, result table); default runs/sweeps/<sweep name>.
        configs: replace the command's --config files with these (e.g. experiments/debug_cpu.yaml).
        extra: arguments added to every trial's command right before the swept ones.
        seed: seed of the random and bayes suggestions (with the trial number).
        poll_s: seconds between looks at a running trial's metric history.
        stop_grace_s: seconds a trial gets to stop on its own (STOP file, SIGTERM) before it is killed.
        max_resumes: times an interrupted trial is resumed within one driver run before it counts as failed.
        project: W&B project of the offline runs.
        cwd: folder the trial commands run in (relative paths in the YAML are relative to it).
    """

    sweep_file: Path
    count: int | None = None
    out: Path | None = None
    configs: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    seed: int = 0
    poll_s: float = 1.0
    stop_grace_s: float = 120.0
    max_resumes: int = 2
    project: str = "paralm"
    cwd: Path = field(default_factory=Path.cwd)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "sweep"


class SweepDriver:
    """Suggest, launch, watch, and record trials until the sweep has `count` of them."""

    def __init__(self, opts: SweepOptions) -> None:
        self.opts = opts
        spec = SweepSpec.load(opts.sweep_file)
        self.spec = spec.with_config_files(opts.configs) if opts.configs else spec
        self.count = opts.count if opts.count is not None else self.spec.grid_size()
        if self.count is None:
            raise SweepSpecError(f"sweep file {spec.path}: method {spec.method} needs --count N (total trials)")
        self.out = Path(opts.out or Path("runs") / "sweeps" / _slug(self.spec.name))
        if not self.out.is_absolute():
            self.out = opts.cwd / self.out
        self.state = SweepState.open(self.out, self.spec.name, spec.path, spec.text_sha256, opts.seed)
        self.metric = self.spec.metric_name

    # ---- the loop ----------------------------------------------------------------------------------
    def run(self) -> list[Trial]:
        self._check_hashes()
        for trial in self.state.interrupted():
            if end_orphan(trial.attempts[-1].get("pgid") if trial.attempts else None, trial.dir):
                self._say(f"{trial.id}: ended the copy a killed driver left running")
            self._run_until_ended(trial, resume=True)
        while len(self.state.trials) < self.count:
            params = self._suggest()
            if params is None:
                self._say("the grid is exhausted")
                break
            trial = self.state.new_trial(params, self._hash(params))
            self._run_until_ended(trial, resume=False)
        return self.state.trials

    def _suggest(self) -> dict | None:
        import numpy as np

        seed = (self.state.sweep["seed"] * 1_000_003 + len(self.state.trials)) % 2**32
        np.random.seed(seed)
        random.seed(seed)
        run = import_sweeps().next_run(self.spec.config, self.state.sweep_runs(self.metric), validate=True)
        return None if run is None else {k: plain(v["value"]) for k, v in run.config.items()}

    def _hash(self, params: dict) -> str:
        return config_hash(self.spec.expand(params, interpreter="python", before_args=self.opts.extra), self.opts.cwd)

    def _check_hashes(self) -> None:
        """A restart must resolve every recorded trial to the same arguments (same options, same config files)."""
        for trial in self.state.trials:
            expected = self._hash(trial.params)
            if trial.config_hash != expected:
                raise SweepStateError(
                    f"trial {trial.id}: its resolved arguments changed since it ran (config hash {trial.config_hash[:12]}"
                    f" != {expected[:12]}): a --config file was edited, or other options/`--` arguments were given; "
                    "rerun with the original ones or use a new --out folder")

    def _run_until_ended(self, trial: Trial, resume: bool) -> None:
        for attempt in range(self.opts.max_resumes + 1):
            self._attempt(trial, resume=resume or attempt > 0)
            if trial.status != "running":
                return
        trial.status = "failed"
        self.state.save()
        self._say(f"{trial.id}: interrupted {self.opts.max_resumes + 1} times in a row, counted as failed")

    # ---- one launch of a trial ---------------------------------------------------------------------
    def _attempt(self, trial: Trial, resume: bool) -> None:
        tdir = self.state.trial_dir(trial)
        tdir.mkdir(parents=True, exist_ok=True)
        info = {"sweep": self.spec.name, "trial": trial.id, "config_hash": trial.config_hash, "params": trial.params}
        write_text_atomic(tdir / TRIAL_FILE, json.dumps(info, indent=1) + "\n")
        ckpt = latest_checkpoint(tdir) if resume else None
        command = self._command(trial, tdir, ckpt)
        record = {"started": time.time(), "ended": None, "exit_code": None, "pgid": None,
                  "resume_from": str(ckpt) if ckpt else None, "command": command}
        trial.attempts.append(record)
        self._say(f"{trial.id}: {'resume from ' + ckpt.name if ckpt else 'start'} "
                  + " ".join(f"{k}={v}" for k, v in trial.params.items()))
        env = dict(os.environ, WANDB_MODE="offline")
        proc = TrialProcess(command, self.opts.cwd, tdir / "trial.log", env)
        record["pgid"] = proc.pgid
        self.state.save()
        try:
            code = self._watch(trial, tdir, proc)
        except BaseException:  # Ctrl-C or SIGTERM of the driver: let the trial checkpoint and leave it resumable
            proc.stop(self.opts.stop_grace_s)
            raise
        trial.history = read_history(tdir, self.metric)
        record.update(exit_code=code, ended=time.time())
        if code == 0 or trial.stop_requested:
            trial.status = "stopped" if trial.stop_requested else "finished"
        elif not exit_was_interruption(code):
            trial.status = "failed"
        self.state.save()
        best = trial.best(self.metric, self.spec.goal)
        self._say(f"{trial.id}: {trial.status} (exit {code}), best {self.metric}={best}; log {tdir / 'trial.log'}")

    def _command(self, trial: Trial, tdir: Path, ckpt: Path | None) -> list[str]:
        args_file = tdir / "args.json"
        write_text_atomic(args_file, json.dumps(trial.params) + "\n")
        words = self.spec.expand(trial.params, interpreter=sys.executable, args_json_file=str(args_file),
                                 before_args=self.opts.extra)
        name = f"{_slug(self.spec.name)}-{trial.id}"
        # the run folder is <default_root_dir>/<run_name> (paralm/run_folder.py): the trial folder itself
        words += [f"--trainer.default_root_dir={tdir.parent}", f"--trainer.logger={LOGGER}", "--trainer.logger.offline=true",
                  f"--trainer.logger.save_dir={tdir}", f"--trainer.logger.project={self.opts.project}",
                  f"--trainer.logger.group={_slug(self.spec.name)}", f"--trainer.logger.name={name}",
                  f"--trainer.callbacks+={CALLBACK}", f"--trainer.callbacks.trial_dir={tdir}", f"--run_name={tdir.name}"]
        return words + ([f"--ckpt_path={ckpt}"] if ckpt else [])

    def _watch(self, trial: Trial, tdir: Path, proc: TrialProcess) -> int:
        """Wait for the trial; meanwhile refresh its history and apply hyperband's stop decisions."""
        stop_at = None
        while (code := proc.poll()) is None:
            time.sleep(self.opts.poll_s)
            history = read_history(tdir, self.metric)
            if history != trial.history:
                trial.history = history
                self.state.save()
            if not trial.stop_requested and self._hyperband_stops(trial):
                write_text_atomic(tdir / STOP_FILE, f"hyperband at validation {len(history)}\n")
                trial.stop_requested, stop_at = True, time.monotonic()
                self.state.save()
                self._say(f"{trial.id}: hyperband stops it after {len(history)} validations")
            if stop_at is not None and time.monotonic() - stop_at > self.opts.stop_grace_s:
                return proc.stop(self.opts.stop_grace_s)
        return code

    def _hyperband_stops(self, trial: Trial) -> bool:
        if not self.spec.early_terminate or not trial.history:
            return False
        to_stop = import_sweeps().stop_runs(self.spec.config, self.state.sweep_runs(self.metric), validate=True)
        return any(run.name == trial.id for run in to_stop)

    # ---- results -----------------------------------------------------------------------------------
    def report(self) -> str:
        rows = table_rows(self.state.trials, self.metric, self.spec.goal)
        write_text_atomic(self.out / "results.md", f"# sweep {self.spec.name}: ranked by {self.metric} "
                          f"({self.spec.goal})\n\n" + as_markdown(rows))
        write_text_atomic(self.out / "results.csv", as_csv(rows))
        return as_text(rows)

    def _say(self, message: str) -> None:
        print(f"[sweep {self.spec.name}] {message}", flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="paralm sweep", description=__doc__.split("\n\n")[0],
                                epilog="Arguments after `--` are added to every trial's command before the swept ones.")
    p.add_argument("sweep_file", type=Path, help="W&B sweep YAML (sweeps/*.yaml)")
    p.add_argument("--count", type=int, default=None, help="total trials (default: grid size)")
    p.add_argument("--out", type=Path, default=None, help="sweep folder (default runs/sweeps/<name>)")
    p.add_argument("--config", dest="configs", action="append", default=[],
                   help="replace the command's --config files (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seed of random/bayes suggestions")
    p.add_argument("--poll", dest="poll_s", type=float, default=1.0, help="seconds between history reads")
    p.add_argument("--stop-grace", dest="stop_grace_s", type=float, default=120.0,
                   help="seconds a trial gets to stop before it is killed")
    p.add_argument("--max-resumes", type=int, default=2, help="resumes of an interrupted trial per driver run")
    p.add_argument("--project", default="paralm", help="W&B project of the offline runs")
    p.add_argument("--check", action="store_true",
                   help="only validate: schema, and every parameter parsed by the real CLI; run nothing")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    ns = build_parser().parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    check = ns.__dict__.pop("check")
    opts = SweepOptions(**vars(ns), extra=extra)
    try:
        if check:
            return _check(opts)
        driver = SweepDriver(opts)
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        driver.run()
    except (SweepSpecError, SweepStateError) as err:
        print(f"paralm sweep: {err}", file=sys.stderr)
        return 2
    print(driver.report())
    problem = sweep_metric_problem(driver.metric, [driver.state.trial_dir(t) for t in driver.state.trials])
    if problem:
        print(f"paralm sweep: nothing usable: {problem}", file=sys.stderr)
        return EXIT_NOTHING_USABLE
    return 0


def _check(opts: SweepOptions) -> int:
    """Exit 0 when every probe parses and the metric is one the trial logs; 2 (user error) otherwise."""
    from paralm.runs.sweep.check import check_cli_keys

    spec = SweepSpec.load(opts.sweep_file)
    spec = spec.with_config_files(opts.configs) if opts.configs else spec
    configs: list[dict] = []
    problems = check_cli_keys(spec, opts.cwd, opts.extra, configs_out=configs)
    if configs:
        metric = metric_problem(spec.metric_name, expected_metrics(configs[0]), "log")
        problems += [f"{spec.path}: {metric}"] if metric else []
    for problem in problems:
        print(f"paralm sweep --check: {problem}", file=sys.stderr)
    if not problems:
        print(f"{spec.path}: valid ({spec.method}, {len(spec.parameters)} parameters, every key parsed by the CLI, "
              f"metric {spec.metric_name} logged by the trials)")
    return EXIT_USER_ERROR if problems else 0


if __name__ == "__main__":
    sys.exit(main())
