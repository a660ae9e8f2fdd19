"""`paralm ablate ABLATION.yaml [--rows a,b] [--seeds N] [--steps N] [--out DIR] [--report-only]`.

Prepares the derived data once (paralm/runs/ablate_prepare.py), trains and evaluates every (row, seed)
that has no finished result folder yet (paralm/runs/ablate_run.py), then writes the report from the
result folders (paralm/runs/ablate_report.py) and prints its tables. A rerun skips finished pairs, so
an interrupted ablation resumes where it stopped.
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
from paralm.runs.ablate_config import AblationConfig, cache_root, load_ablation, select

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
    return p


def _quiet_lightning() -> None:
    """Each run prints the same Lightning banners; keep the console to our progress and tables."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_ablation(cfg: AblationConfig, verbose: bool = False, report_only: bool = False) -> dict:
    """Run the missing (row, seed) pairs of `cfg` and write the report; returns write_report's result."""
    from paralm.runs.ablate_prepare import prepare
    from paralm.runs.ablate_report import write_report
    from paralm.runs.ablate_run import is_finished, train_and_evaluate

    if not verbose:
        _quiet_lightning()
    out = Path(cfg.out)
    if not report_only:
        t0 = time.time()
        paths = prepare(cfg.data, cache_root(cfg))
        print(f"ablate: derived data ready in {time.time() - t0:.0f} s ({', '.join(paths)})")
        todo = [(row, seed) for seed in cfg.seeds for row in cfg.rows if not is_finished(out, row, seed)]
        skipped = len(cfg.rows) * len(cfg.seeds) - len(todo)
        if skipped:
            print(f"ablate: {skipped} finished (row, seed) pair(s) kept from an earlier run")
        torch.set_num_threads(max(1, cfg.train.threads))
        for names, seed in tqdm(_training_groups(cfg, todo), desc="ablation trainings", unit="run"):
            t1 = time.time()
            train_and_evaluate(cfg, names, seed, paths)
            tqdm.write(f"ablate: {'+'.join(names)} seed {seed} done in {time.time() - t1:.0f} s")
    return write_report(cfg)


def _training_groups(cfg: AblationConfig, todo: list[tuple[str, int]]) -> list[tuple[list[str], int]]:
    """(rows sharing one trained model, seed) in file order: rows that differ only in their evaluation
    prompt (explicit and its oracle) are trained once and evaluated twice, on the same weights."""
    from paralm.runs.ablate_run import training_signature

    groups: dict[tuple[str, int], list[str]] = {}
    for row, seed in todo:
        groups.setdefault((training_signature(cfg, row), seed), []).append(row)
    return [(names, seed) for (_sig, seed), names in groups.items()]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None
    try:
        cfg = select(load_ablation(args.config), rows=rows, seeds=args.seeds, steps=args.steps, out=args.out)
    except ValueError as err:  # an invalid ablation file or option: one line, exit 2 (paralm/cli_guard.py)
        raise UserError(str(err)) from err
    result = run_ablation(cfg, verbose=args.verbose, report_only=args.report_only)
    print(result["markdown"])
    print(f"report: {result['paths']['md']}\nplot:   {result['paths']['png']}\ntable:  {result['paths']['csv']}")
    return 0
