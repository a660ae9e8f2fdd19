"""`paralm demo`: the paper's ablation in miniature on the embedded demo corpus, on CPU.

Runs experiments/ablation_demo.yaml (baseline, explicit, implicit, implicit + explicit, the
permuted-label control and the ORACLE row, three seeds each; every row trains as `paralm fit` on
experiments/demo/model.yaml plus its overlay, see paralm/runs/ablate/fit.py) and prints the report's
tables (with the shuffled-audio and permuted-metadata controls) and where the report and plot are. Options narrow the run (`--rows`, `--seeds`, `--steps`), move it
(`--out`) or change how many pairs train at once (`--jobs`, the file says 2: one per core of a 2-core
machine); finished (row, seed) pairs are kept, so a second call only rebuilds the report.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from paralm.runs.ablate.command import run_ablation
from paralm.runs.ablate.config import load_ablation, select

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "experiments" / "ablation_demo.yaml"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="paralm demo", description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(DEMO_CONFIG), help="ablation file (default: the demo ablation)")
    p.add_argument("--rows", default=None, help="comma-separated subset of rows")
    p.add_argument("--seeds", type=int, default=None, help="run only the first N seeds")
    p.add_argument("--steps", type=int, default=None, help="training steps per run")
    p.add_argument("--out", default=None, help="output folder (default: runs/ablation_demo)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="pairs trained at the same time, one process each (default: the file's `jobs`: 2)")
    return p


def check_corpus(general: str) -> None:
    """The demo needs the committed corpus; say how to get it when it is missing."""
    if not (Path(general) / "index.json").exists():
        raise SystemExit(f"paralm demo: no demo corpus at {general} (expected index.json there); run it from the "
                         "repository root, or rebuild the corpus with `python data/demo/build.py` "
                         "(see data/demo/README.md)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None
    cfg = select(load_ablation(args.config), rows=rows, seeds=args.seeds, steps=args.steps, out=args.out,
                 jobs=args.jobs)
    check_corpus(cfg.data.general)
    n_runs = len(cfg.rows) * len(cfg.seeds)
    print(f"paralm demo: {len(cfg.rows)} rows x {len(cfg.seeds)} seeds = {n_runs} runs of {cfg.train.steps} steps, "
          f"{cfg.jobs} at a time")
    start = time.time()
    result = run_ablation(cfg, config_path=args.config, cli_args=_as_ablate_args(args))
    print(result["markdown"])
    print(f"finished in {(time.time() - start) / 60:.1f} min")
    print(f"report: {result['paths']['md']}\nplot:   {result['paths']['png']}\ntable:  {result['paths']['csv']}")
    return 0


def _as_ablate_args(args: argparse.Namespace) -> list[str]:
    """The demo's narrowing options as `paralm ablate` options (what each `--jobs` pair process repeats)."""
    pairs = (("--rows", args.rows), ("--seeds", args.seeds), ("--steps", args.steps), ("--out", args.out))
    return [word for flag, value in pairs if value is not None for word in (flag, str(value))]
