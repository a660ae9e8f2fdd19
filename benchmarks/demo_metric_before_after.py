"""The demo's DP metric before and after DP items were scored by what they ask, on the SAME predictions.

Why: the ablation issue changed how `dp_acc` decides that a DP question asks about emotion. Before, a
regex on the question text did it, and it read the demo's held-out gender phrasings ("Do you hear a
male or a female voice?", "Is the speaker a man or a woman?") as emotion questions, which then counted
as wrong whatever the model said. Now the item's `asks` field decides (the question-text guess is a
counted fallback for items without it, and it recognises those phrasings). Re-scoring one finished run
both ways separates the metric's change from the training changes made in the same round.

    python benchmarks/demo_metric_before_after.py runs/ablation_demo [--out benchmarks/demo_metric_before_after.md]

Reads the run's saved predictions only (no training, no model); prints and writes a markdown table of
dp_acc per row (neutral-text items, mean over seeds and items, 95 % bootstrap CI) under both metrics,
with the number of DP items each metric scores as an emotion question.
"""

from __future__ import annotations

import argparse
import re
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from paralm.eval import scorers  # noqa: E402
from paralm.runs.ablate.config import load_ablation  # noqa: E402
from paralm.runs.ablate.report import load_matrices, score_table  # noqa: E402

# The question-text rule that scored the README table of the previous round (commit f553fd7): a DP
# question asked about gender only when it said "gender", "sex" or "male or female" / "man or woman"
# with no article in between; everything else was an emotion question.
_OLD_GENDER_QUESTION = re.compile(r"\b(?:gender|sex|male or female|female or male|man or woman|woman or man)\b",
                                  re.I)


def _old_row_asks(row) -> tuple[str, bool]:
    if row.label_kind is not None:  # an explicit label kind on the row was honoured then as now
        return row.label_kind, False
    return ("gender" if _OLD_GENDER_QUESTION.search(row.question or "") else "emotion"), True


@contextmanager
def old_metric():
    """Score every DP item with the previous round's question-text rule, ignoring `asks`."""
    saved = scorers.row_asks
    scorers.row_asks = _old_row_asks
    try:
        yield
    finally:
        scorers.row_asks = saved


def dp_rows(cfg, subset: str = "neutral") -> dict[str, dict]:
    """row -> the dp_acc record (estimate, CI, items) of the normal condition on `subset`."""
    records = score_table(cfg, load_matrices(cfg))
    return {r["row"]: r for r in records
            if r["metric"] == "dp_acc" and r["condition"] == "normal" and r["subset"] == subset}


def _cells(rec: dict | None) -> tuple[str, str]:
    if rec is None:
        return "missing", "-"
    return f"{rec['estimate']:.3f} [{rec['ci_low']:.3f}, {rec['ci_high']:.3f}]", str(rec["n_items"])


def render(cfg, before: dict, after: dict) -> str:
    lines = [f"# dp_acc before/after scoring DP items by `asks` ({cfg.out}, neutral-text items)", "",
             "| row | old metric (question-text rule) | items | new metric (`asks`, counted fallback) | items |",
             "|---|---|---|---|---|"]
    for row in cfg.rows:
        b, a = before.get(row), after.get(row)
        if b is None and a is None:
            continue
        lines.append(f"| {row} | {' | '.join(_cells(b))} | {' | '.join(_cells(a))} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", help="a finished `paralm demo` / `paralm ablate experiments/ablation_demo.yaml` out folder")
    p.add_argument("--ablation", default=str(ROOT / "experiments" / "ablation_demo.yaml"))
    p.add_argument("--out", default=None, help="also write the table here")
    args = p.parse_args(argv)
    cfg = load_ablation(args.ablation)
    cfg.out = str(Path(args.run))
    after = dp_rows(cfg)
    with old_metric():
        before = dp_rows(cfg)
    text = render(cfg, before, after)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
