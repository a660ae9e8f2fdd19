"""The ablation plot: one panel per metric, one bar pair per row (normal audio, shuffled audio) with CIs.

Rendered with matplotlib's Agg backend so it works on machines without a display.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from paralm.runs.ablate_config import METRICS, AblationConfig  # noqa: E402


def _bars(records: list[dict], rows: list[str], metric: str, cond: str) -> tuple[list, list]:
    by_row = {r["row"]: r for r in records if r["metric"] == metric and r["condition"] == cond
              and r["subset"] == "all"}
    means, errs = [], [[], []]
    for row in rows:
        rec = by_row.get(row)
        est = rec["estimate"] if rec and rec["estimate"] is not None else 0.0
        means.append(est)
        low = rec["ci_low"] if rec and rec["ci_low"] is not None else est
        high = rec["ci_high"] if rec and rec["ci_high"] is not None else est
        errs[0].append(max(0.0, est - low))
        errs[1].append(max(0.0, high - est))
    return means, errs


def plot_report(cfg: AblationConfig, records: list[dict], path: str | Path) -> Path:
    """Write the PNG; oracle rows are labelled ORACLE on the axis."""
    rows = [r for r in cfg.rows if any(rec["row"] == r for rec in records)]
    labels = [f"{r}\n(ORACLE)" if cfg.rows[r].is_oracle else r for r in rows]
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 3.6), squeeze=False)
    xs = list(range(len(rows)))
    for ax, metric in zip(axes[0], METRICS, strict=True):
        for offset, cond, hatch in ((-0.2, "normal", ""), (0.2, "shuffled", "//")):
            means, errs = _bars(records, rows, metric, cond)
            ax.bar([x + offset for x in xs], means, width=0.4, yerr=errs, capsize=3, hatch=hatch,
                   label=f"{cond} audio", alpha=0.85 if cond == "normal" else 0.5)
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(metric)
        ax.set_ylim(0, 1)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{cfg.name}: mean over seeds and items, 95 % CI")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
