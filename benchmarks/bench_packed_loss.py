"""Demo training speed: the packed loss (pad-free rows, LM head on answer positions) vs the padded loss.

Why: a demo batch of 16 is largely padding (prompts differ in length, more so when implicit QA pairs
join the general data or a metadata block is added), and the loss needs logits at a fraction of the
real positions; `runtime.packed_loss` (paralm/model/packing.py, on by default) removes both costs. This
measures what `paralm demo` trains: the derived data of experiments/ablation_demo.yaml is prepared
(as `paralm ablate --prepare-only` does), and for the rows baseline, implicit and explicit the demo's
`paralm fit` runs with that row's data and prompts (its overlay without the trainer section), one thread
(one slot of `paralm demo`), cached encoder states, no workers: once with
`--model.runtime.packed_loss false` (the baseline) and once packed, from the same seed. The steps after a
warm-up are timed; the same seed gives both runs the same batches, so their per-step training losses
must agree up to float rounding.

    python benchmarks/bench_packed_loss.py [--steps 60] [--rows baseline,implicit,explicit]
                                           [--out benchmarks/packed_loss.md]

Run it on an otherwise idle machine; each ratio is against the padded run of the same row in this run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import yaml
from bench_demo_jobs import WARMUP, _fit, _rate, _wait

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ABLATION = ROOT / "experiments" / "ablation_demo.yaml"


def row_configs(work: Path, rows: list[str]) -> dict[str, Path]:
    """Each row's `paralm fit` overlay on the prepared derived data, its trainer section left out."""
    from paralm.runs.ablate.config import cache_root, load_ablation
    from paralm.runs.ablate.fit import row_overlay
    from paralm.runs.ablate.prepare import prepare

    cfg = replace(load_ablation(str(ABLATION)), out=str(work / "ablation"))
    paths = prepare(cfg.data, cache_root(cfg))
    out = {}
    for row in rows:
        overlay = row_overlay(cfg, row, paths)
        overlay.pop("trainer")
        overlay["data"].pop("feature_cache")
        out[row] = work / f"{row}.yaml"
        out[row].write_text(yaml.safe_dump(overlay))
    return out


def measure(steps: int, rows: list[str]) -> dict:
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_packed_loss_") as tmp:
        work = Path(tmp)
        configs = row_configs(work, rows)
        for row, config in configs.items():
            if not results:  # encoder states cached once, outside every measurement
                _wait([_fit(work, "fill", 1, 1, ("--config", str(config)))])
            padded = _wait([_fit(work, f"{row}-padded", steps, 1,
                                 ("--config", str(config), "--model.runtime.packed_loss", "false"))])[0]
            packed = _wait([_fit(work, f"{row}-packed", steps, 1,
                                 ("--config", str(config), "--model.runtime.packed_loss", "true"))])[0]
            gap = max(abs(a - b) for a, b in zip(padded["losses"], packed["losses"], strict=True))
            results[row] = {"padded": _rate([padded]), "packed": _rate([packed]), "gap": gap,
                            "last": (padded["losses"][-1], packed["losses"][-1])}
    return results


def report(results: dict, steps: int, load: float) -> str:
    lines = [
        "# Demo training speed: packed loss vs padded loss", "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC with `python benchmarks/bench_packed_loss.py "
        f"--steps {steps} --rows {','.join(results)}` on {os.cpu_count()} cores (load average {load:.2f} at "
        f"start): `paralm fit` on experiments/demo/model.yaml with each row's data and prompts from "
        f"experiments/ablation_demo.yaml, one thread, {steps} steps after {WARMUP} warm-up steps, batch 16, "
        "cached encoder states, no dataloader workers, the same seed for both runs of a row.", "",
        "| row | padded steps / s (baseline) | packed steps / s | packed vs padded | training loss at the last "
        "step, padded / packed | largest per-step loss difference |", "|---|---|---|---|---|---|"]
    for row, m in results.items():
        lines.append(f"| {row} | {m['padded']:.2f} | {m['packed']:.2f} | {m['packed'] / m['padded']:.2f}x | "
                     f"{m['last'][0]:.6f} / {m['last'][1]:.6f} | {m['gap']:.2e} |")
    lines += ["", "The loss differences are float rounding (summation order), compounding over the updates.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60, help="measured steps per run (after the warm-up)")
    p.add_argument("--rows", default="baseline,implicit,explicit", help="rows of experiments/ablation_demo.yaml")
    p.add_argument("--out", default=str(HERE / "packed_loss.md"), help="markdown output")
    args = p.parse_args(argv)
    load = os.getloadavg()[0]
    text = report(measure(args.steps, [r.strip() for r in args.rows.split(",") if r.strip()]), args.steps, load)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
