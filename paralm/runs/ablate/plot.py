"""The ablation plot, for a researcher reading the result at a glance.

One panel per metric on the headline subset (neutral-text items: the words give nothing away), with a
bar per row and condition (normal audio, shuffled audio, permuted metadata) and its 95 % CI, the row's
empirical floor as a dashed line (each answer scored against another item's reference), and values
that do not exist (a row without a metadata block has no permuted bar; a row not run has none) marked
"n/a" instead of drawn as 0. A last panel shows the headline difference (treatment - control) per
headline metric with its CI against zero. Rendered with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from paralm.runs.ablate.config import METRICS, AblationConfig  # noqa: E402

SUBSET = "neutral"
BARS = (("normal", "normal audio", ""), ("shuffled", "shuffled audio", "//"), ("permuted", "permuted metadata", ".."))
WIDTH = 0.26


def _lookup(records: list[dict], metric: str, cond: str) -> dict[str, dict]:
    return {r["row"]: r for r in records if r["metric"] == metric and r["condition"] == cond
            and r["subset"] == SUBSET and r["estimate"] is not None}


def _metric_panel(ax, records: list[dict], rows: list[str], labels: list[str], metric: str) -> None:
    xs = range(len(rows))
    for i, (cond, label, hatch) in enumerate(BARS):
        found = _lookup(records, metric, cond)
        offset, labelled = (i - 1) * WIDTH, False
        for x, row in zip(xs, rows, strict=True):
            rec = found.get(row)
            if rec is None:
                ax.text(x + offset, 0.02, "n/a", ha="center", va="bottom", fontsize=6, rotation=90, color="grey")
                continue
            est = rec["estimate"]
            err = [[max(0.0, est - (rec["ci_low"] if rec["ci_low"] is not None else est))],
                   [max(0.0, (rec["ci_high"] if rec["ci_high"] is not None else est) - est)]]
            ax.bar(x + offset, est, width=WIDTH, yerr=err, capsize=2, hatch=hatch, color=f"C{i}",
                   alpha=0.85, label=None if labelled else label)
            labelled = True
    floors = _lookup(records, metric, "floor")
    for x, row in enumerate(r for r in rows if r in floors):
        ax.hlines(floors[row]["estimate"], rows.index(row) - 1.5 * WIDTH, rows.index(row) + 1.5 * WIDTH,
                  colors="black", linestyles="--", linewidth=1,
                  label="floor (other item's reference)" if x == 0 else None)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_title(f"{metric} ({SUBSET}-text items)")
    ax.set_xlabel("ablation row")
    ax.set_ylabel(f"{metric} (mean over seeds and items)")
    ax.set_ylim(0, 1)


def _headline_panel(ax, cfg: AblationConfig, head: dict) -> None:
    treat, control = cfg.headline
    names = list(head)
    for x, metric in enumerate(names):
        d = head.get(metric)
        if d is None or d.get("estimate") is None:
            ax.text(x, 0, "n/a", ha="center", va="center", color="grey")
            continue
        err = [[d["estimate"] - d["ci_low"]], [d["ci_high"] - d["estimate"]]]
        ax.errorbar([x], [d["estimate"]], yerr=err, fmt="o", capsize=4, color="C3")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=8)
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_title(f"headline: {treat} - {control}\n({SUBSET}-text items, 95 % CI)", fontsize=9)
    ax.set_ylabel("difference in score")


def plot_report(cfg: AblationConfig, records: list[dict], path: str | Path, head: dict | None = None,
                at_floor: bool = False) -> Path:
    """Write the PNG; oracle rows are labelled ORACLE on the axis."""
    rows = [r for r in cfg.rows if any(rec["row"] == r for rec in records)]
    labels = [f"{r}\n(ORACLE)" if cfg.rows[r].is_oracle else r for r in rows]
    fig, axes = plt.subplots(1, len(METRICS) + 1, figsize=(4.4 * len(METRICS) + 3.2, 4.0), squeeze=False,
                             gridspec_kw={"width_ratios": [4.4] * len(METRICS) + [3.2]})
    for ax, metric in zip(axes[0][:-1], METRICS, strict=True):
        _metric_panel(ax, records, rows, labels, metric)
    _headline_panel(axes[0][-1], cfg, head or {})
    axes[0][0].legend(fontsize=7, loc="upper left")
    title = f"{cfg.name}: mean over seeds {cfg.seeds} and items, 95 % CI"
    if at_floor:
        title += " - EVERY ROW AT ITS FLOOR: nothing measurable learned"
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
