"""Run the CPU ratio benchmarks and write benchmarks/results.md.

Every figure is a ratio against a baseline measured in the same run on the same machine, so results
from different machines compare by their ratios, not their absolute rates:
    a  useful encoder frames: bucketed real length vs pad-to-30-s        (bench_frames.py)
    b  loader + features samples/s vs a naive pad-to-30-s loader         (bench_loader.py)
    c  tiny-model training samples/s, bucketed vs naive, loss parity     (bench_train.py)
    d  judge requests/s vs sequential clients; cached rerun sends 0      (bench_judge.py)
    e  peak memory of a debug fit; chunked CE, gradient checkpointing    (bench_memory.py)
    f  cached encoder features vs online encoding                        (bench_cache.py)

    python benchmarks/run.py                 # everything, about 2 minutes on an idle 2-core box
    python benchmarks/run.py --only a,c      # a subset
    python benchmarks/run.py --quick         # tiny sizes (checks that it runs; writes to the work dir)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))  # `callbacks` is a top-level package of the repository

import torch  # noqa: E402
from bench_common import FULL, QUICK, Scale, machine_info  # noqa: E402


def _registry() -> dict[str, tuple[str, Callable[[Scale, Path, int], dict]]]:
    import bench_cache
    import bench_frames
    import bench_judge
    import bench_loader
    import bench_memory
    import bench_train

    return {
        "a": ("Useful encoder frames", lambda s, w, seed: bench_frames.run(s, seed)),
        "b": ("Loader + features throughput", bench_loader.run),
        "c": ("Tiny-model training throughput and loss parity", bench_train.run),
        "d": ("Judge client throughput", lambda s, w, seed: bench_judge.run(s)),
        "e": ("Peak memory of a debug fit", bench_memory.run),
        "f": ("Cached encoder features vs online encoding", bench_cache.run),
    }


def render_section(key: str, title: str, result: dict, when: str) -> str:
    verdict = {True: "meets target", False: "BELOW TARGET", None: "measured (no target)"}[result["pass"]]
    lines = [f"## ({key}) {title}: {verdict} ({result['elapsed_s']:.0f} s, {when})", "",
             "| measure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in result["rows"]]
    return "\n".join(lines) + "\n"


def existing_sections(path: Path) -> dict[str, str]:
    """Sections of an earlier results file by letter, kept when a run re-measures only some (--only)."""
    if not path.is_file():
        return {}
    parts = path.read_text().split("\n## (")[1:]
    return {part[0]: "## (" + part.rstrip("\n") + "\n" for part in parts}


def render(sections: dict[str, str], info: dict[str, str], quick: bool, when: str) -> str:
    lines = ["# Benchmark results", "",
             "Written by `python benchmarks/run.py`" + (" --quick (tiny sizes: not for comparison)" if quick else "")
             + f"; last run {when}. Each figure is a ratio against a baseline measured in the same run (each "
             "section says when it ran); see docs/performance.md for what each one means.",
             "", "| machine (last run) | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in info.items()]
    return "\n".join(lines) + "\n\n" + "\n".join(sections[k] for k in sorted(sections))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CPU ratio benchmarks -> benchmarks/results.md")
    parser.add_argument("--only", default="a,b,c,d,e,f", help="comma-separated benchmark letters (a-f)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes; checks the benchmarks run")
    parser.add_argument("--out", default=None, help="results file (default benchmarks/results.md; "
                        "with --quick <workdir>/results-quick.md)")
    parser.add_argument("--workdir", default=None, help="scratch directory for shards and caches (default: temp)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the duration mix and plans")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a figure misses its target")
    args = parser.parse_args(argv)
    registry = _registry()
    chosen = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = [k for k in chosen if k not in registry]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; valid: {', '.join(registry)}")
    torch.set_num_threads(1)  # one thread in the training process; loader workers use the other core
    scale = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="paralm-bench-") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        out = Path(args.out) if args.out else (workdir / "results-quick.md" if args.quick else HERE / "results.md")
        info, results = machine_info(), {}
        for key in chosen:
            title, fn = registry[key]
            start = time.perf_counter()
            results[key] = fn(scale, workdir, args.seed)
            results[key]["elapsed_s"] = time.perf_counter() - start
            print(f"({key}) {title}: " + "; ".join(f"{n} = {v}" for n, v in results[key]["rows"]), flush=True)
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        sections = existing_sections(out)
        sections.update({k: render_section(k, registry[k][0], r, when) for k, r in results.items()})
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(sections, info, args.quick, when))
        print(f"wrote {out}")
    return 1 if args.strict and any(r["pass"] is False for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
