"""The sweep's result table: trials ranked by the sweep metric, as text, markdown and CSV.

Ranking uses each trial's best value of the metric over its validations (the value W&B's bayes search
also optimises); the last value is shown beside it. Trials without a value (failed before their first
validation) come last. Early-stopped trials are ranked with what they reached and marked `stopped`.
"""

from __future__ import annotations

import csv
import io

from paralm.runs.sweep.state import Trial


def ranked(trials: list[Trial], metric: str | None, goal: str) -> list[Trial]:
    """Trials ordered best first; ties and missing values keep trial order."""
    sign = 1.0 if goal == "minimize" else -1.0

    def key(t: Trial):
        best = t.best(metric, goal)
        return (best is None, sign * best if best is not None else 0.0, t.id)

    return sorted(trials, key=key)


def table_rows(trials: list[Trial], metric: str | None, goal: str) -> list[dict]:
    params = sorted({k for t in trials for k in t.params})
    rows = []
    for rank, t in enumerate(ranked(trials, metric, goal), start=1):
        best, last = t.best(metric, goal), t.last(metric)
        row = {"rank": rank, "trial": t.id, "status": t.status,
               f"best {metric}": _fmt(best), f"last {metric}": _fmt(last),
               "validations": len(t.history), "attempts": len(t.attempts)}
        row.update({p: t.params.get(p, "") for p in params})
        row["config_hash"] = t.config_hash[:12]
        rows.append(row)
    return rows


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def as_text(rows: list[dict]) -> str:
    """A fixed-width table for the terminal."""
    if not rows:
        return "(no trials)"
    cols = list(rows[0])
    widths = {c: max(len(str(c)), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(str(c).ljust(widths[c]) for c in cols)]
    lines.append("  ".join("-" * widths[c] for c in cols))
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def as_markdown(rows: list[dict]) -> str:
    if not rows:
        return "(no trials)\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def as_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()
