"""`paralm ablate ABLATION.yaml [--rows a,b] [--seeds N] [--steps N] [--out DIR] [--report-only] [--launcher L]`.

Prepares the derived data once (paralm/runs/ablate/prepare.py), trains every (training signature, seed)
pair that has an unfinished row through `paralm fit` (paralm/runs/ablate/fit.py, on the launcher of
paralm/runs/ablate/launch.py), evaluates its rows (paralm/runs/ablate/run.py), then writes the report
from the result folders (paralm/runs/ablate/report.py) and prints its tables. A rerun keeps finished
pairs and resumes an interrupted training from its newest verified checkpoint.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

from paralm.fault.exits import UserError
from paralm.runs.ablate.config import AblationConfig, cache_root, load_ablation, select

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="paralm ablate", description=__doc__.splitlines()[0])
    p.add_argument("config", help="ablation YAML (e.g. experiments/ablation_demo.yaml)")
    p.add_argument("--rows", default=None, help="comma-separated subset of rows (default: all)")
    p.add_argument("--seeds", type=int, default=None, help="run only the first N seeds of the file")
    p.add_argument("--steps", type=int, default=None, help="override the training steps of every row")
    p.add_argument("--out", default=None, help="output folder (default: the file's `out`)")
    p.add_argument("--report-only", action="store_true", help="rebuild the report from finished results")
    p.add_argument("--verbose", action="store_true", help="show Lightning's own output for every run")
    p.add_argument("--launcher", choices=("local", "fabric", "torchrun", "slurm"), default=None,
                   help="where pairs train (default: the file's `launcher`, else local; see runs/ablate/launch.py)")
    p.add_argument("--devices", type=int, default=None, help="processes (GPUs) per pair for fabric/torchrun/slurm")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="pairs trained at the same time, each in its own process with its own GPU(s), or its own "
                        "train.threads CPU threads (default: the file's `jobs`, else 1; see runs/ablate/pool.py)")
    p.add_argument("--fit-config", action="append", default=[], metavar="YAML",
                   help="extra `paralm fit` config applied after the base and before each row (repeatable)")
    p.add_argument("--prepare-only", action="store_true", help="only prepare the derived data (slurm's first job)")
    p.add_argument("--pair-index", type=int, default=None,
                   help="train and evaluate only pair i of the file's (training signature, seed) pairs (job arrays)")
    return p


def _quiet_lightning() -> None:
    """Each run prints the same Lightning banners; keep the console to our progress and tables."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_ablation(cfg: AblationConfig, verbose: bool = False, report_only: bool = False,
                 prepare_only: bool = False, pair_index: int | None = None, config_path: str | None = None,
                 cli_args: list[str] | None = None) -> dict | None:
    """Run the missing (row, seed) pairs of `cfg` and write the report; returns write_report's result
    (None when only the derived data was prepared, one pair of a job array was run, or slurm scripts were
    written: the report is then built by `--report-only`)."""
    from paralm.runs.ablate.prepare import prepare
    from paralm.runs.ablate.report import write_report

    if not verbose:
        _quiet_lightning()
    if not report_only:
        groups = _training_groups(cfg, [(row, seed) for seed in cfg.seeds for row in cfg.rows])
        if cfg.launcher == "slurm" and pair_index is None and not prepare_only:  # the jobs prepare and train
            from paralm.runs.ablate.launch import write_slurm

            folder = write_slurm(config_path or "ABLATION.yaml", cfg.out, len(groups), cli_args or [], cfg.devices)
            print(f"ablate: {len(groups)} pair(s); slurm scripts in {folder}; submit with {folder / 'submit.sh'}")
            return None
        t0 = time.time()
        paths = prepare(cfg.data, cache_root(cfg))
        print(f"ablate: derived data ready in {time.time() - t0:.0f} s ({', '.join(paths)})")
        if prepare_only:
            return None
        if pair_index is not None:
            if not 0 <= pair_index < len(groups):
                raise UserError(f"--pair-index {pair_index}: this ablation has pairs 0..{len(groups) - 1}")
            groups = [groups[pair_index]]
        if pair_index is None and cfg.jobs > 1 and cfg.launcher != "slurm":
            _run_pairs_in_processes(cfg, groups, config_path, cli_args or [])
        else:
            _run_pairs(cfg, groups, paths)
        if pair_index is not None:
            return None
    result = write_report(cfg)
    from paralm.runs.ablate.wandb import log_summary

    log_summary(cfg, result, Path(result["paths"]["png"]))
    return result


def _run_pairs(cfg: AblationConfig, groups: list[tuple[list[str], int]], paths: dict) -> None:
    """Train and evaluate every group with an unfinished row; finished rows are kept."""
    from paralm.runs.ablate.run import train_and_evaluate
    from paralm.runs.ablate.wandb import log_eval_run

    todo = _unfinished(cfg, groups)
    torch.set_num_threads(max(1, cfg.train.threads))
    for _index, names, seed, left in tqdm(todo, desc="ablation trainings", unit="run"):
        t1 = time.time()
        for scores in train_and_evaluate(cfg, names, seed, paths, evaluate=left):
            log_eval_run(cfg, scores)  # a row on another row's weights (the oracle) gets its own W&B run
        tqdm.write(f"ablate: {'+'.join(left)} seed {seed} done in {time.time() - t1:.0f} s")


def _run_pairs_in_processes(cfg: AblationConfig, groups: list[tuple[list[str], int]], config_path: str | None,
                            cli_args: list[str]) -> None:
    """`--jobs N`: every unfinished pair as `paralm ablate FILE ... --jobs 1 --pair-index I`, N at a time
    (paralm/runs/ablate/pool.py); each trains and is evaluated as it would be alone."""
    from paralm.runs.ablate.launch import _bin
    from paralm.runs.ablate.pool import PairJob, run_pool, slot_environments, visible_gpus

    if config_path is None:
        raise UserError("--jobs > 1 runs each pair as `paralm ablate FILE --pair-index I`: the ablation file is needed")
    todo = [PairJob(index, tuple(names), seed) for index, names, seed, _left in _unfinished(cfg, groups)]
    if not todo:
        return
    jobs = min(cfg.jobs, len(todo))
    slots = slot_environments(jobs, cfg.devices, cfg.train.threads, visible_gpus())
    print(f"ablate: {len(todo)} pair(s) to train, {jobs} at a time", flush=True)

    def command(pair: PairJob) -> list[str]:
        return [_bin("paralm"), "ablate", str(config_path), *cli_args, "--launcher", cfg.launcher,
                "--jobs", "1", "--pair-index", str(pair.index)]

    run_pool(todo, command, slots, Path(cfg.out) / "logs")


def _unfinished(cfg: AblationConfig,
                groups: list[tuple[list[str], int]]) -> list[tuple[int, list[str], int, list[str]]]:
    """(index in `groups`, rows, seed, rows without results) of every group that still has work; says how
    many (row, seed) pairs are kept from an earlier run."""
    from paralm.runs.ablate.run import is_finished

    todo = [(i, names, seed, [n for n in names if not is_finished(cfg.out, n, seed)])
            for i, (names, seed) in enumerate(groups)]
    kept = sum(len(names) - len(left) for _i, names, _seed, left in todo)
    if kept:
        print(f"ablate: {kept} finished (row, seed) pair(s) kept from an earlier run", flush=True)
    return [t for t in todo if t[3]]


def _training_groups(cfg: AblationConfig, todo: list[tuple[str, int]]) -> list[tuple[list[str], int]]:
    """(rows sharing one trained model, seed) in file order: rows that differ only in their evaluation
    prompt (explicit and its oracle) are trained once and evaluated twice, on the same weights."""
    from paralm.runs.ablate.run import training_signature

    groups: dict[tuple[str, int], list[str]] = {}
    for row, seed in todo:
        groups.setdefault((training_signature(cfg, row), seed), []).append(row)
    return [(names, seed) for (_sig, seed), names in groups.items()]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None
    try:
        cfg = select(load_ablation(args.config), rows=rows, seeds=args.seeds, steps=args.steps, out=args.out,
                     launcher=args.launcher, devices=args.devices, fit_configs=args.fit_config, jobs=args.jobs)
    except ValueError as err:  # an invalid ablation file or option: one line, exit 2 (paralm/cli_guard.py)
        raise UserError(str(err)) from err
    result = run_ablation(cfg, verbose=args.verbose, report_only=args.report_only, prepare_only=args.prepare_only,
                          pair_index=args.pair_index, config_path=args.config,
                          cli_args=_passed_on(argv or [], args.config))
    if result is None:
        return 0
    print(result["markdown"])
    print(f"report: {result['paths']['md']}\nplot:   {result['paths']['png']}\ntable:  {result['paths']['csv']}")
    return 0


def _passed_on(argv: list[str], config: str) -> list[str]:
    """The command-line choices a slurm task or a `--jobs` pair process must repeat (everything but the
    file, --launcher, --jobs and the one-shot modes), so every pair sees the same rows, seeds, steps and
    output folder."""
    drop_with_value, drop = {"--launcher", "--pair-index", "--jobs"}, {"--prepare-only", "--report-only"}
    out, skip, words = [], False, list(argv)
    if config in words:
        words.remove(config)
    for word in words:
        if skip:
            skip = False
        elif word in drop_with_value:
            skip = True
        elif word.split("=", 1)[0] not in drop | drop_with_value:
            out.append(word)
    return out
