"""The ablation report, computed only from the per-(row, seed) result folders.

Outputs in `<out>/report/`: report.md (tables, headline, shuffled-audio drop, metric definitions),
report.csv (one line per row x condition x subset x metric; conditions normal, shuffled (audio),
permuted (metadata), and the reference levels floor and chance), report.json (the same numbers plus the
headline, both drops and whether every row sits at its floor) and report.png (see paralm/runs/ablate/plot.py). Because everything is read back
from the result files, a report can be rebuilt at any time and checked against them.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from paralm.formats.predictions import read_predictions
from paralm.runs.ablate.config import METRICS, AblationConfig
from paralm.runs.ablate.metrics import DERIVED, SUBSETS, item_values
from paralm.runs.ablate.run import SCORES, is_finished, result_dir
from paralm.runs.ablate.stats import (
    ScoreMatrix,
    aligned,
    difference,
    mean_of,
    paired_bootstrap,
    relative_gain_pct,
)

CONDITIONS = {"normal": "predictions.jsonl", "shuffled": "predictions_shuffled.jsonl",
              "permuted": "predictions_permuted.jsonl"}
AT_FLOOR = 0.02  # a row within this of its floor on every metric has learned nothing measurable
HEADLINE_METRICS = ("cp_mention", "dp_acc")
CSV_FIELDS = ("row", "oracle", "condition", "subset", "metric", "n_seeds", "n_items", "estimate", "ci_low",
              "ci_high", "gain_pct", "gain_low", "gain_high")

Matrices = dict[tuple[str, str, str, str], ScoreMatrix]  # (row, condition, subset, metric)


def load_matrices(cfg: AblationConfig) -> Matrices:
    """Per-item values of every finished (row, seed) result folder."""
    out: Matrices = {}
    for row in cfg.rows:
        for seed in cfg.seeds:
            if not is_finished(cfg.out, row, seed):
                continue
            read = {}
            for cond, fname in CONDITIONS.items():
                if (result_dir(cfg.out, row, seed) / fname).exists():
                    read[cond] = read_predictions(result_dir(cfg.out, row, seed) / fname)
            for cond, (source, pair) in DERIVED.items():
                if source in read:
                    read[cond] = pair(read[source])
            for cond, preds in read.items():
                for subset in SUBSETS:
                    for metric in METRICS:
                        key = (row, cond, subset, metric)
                        out.setdefault(key, ScoreMatrix({})).by_seed[seed] = item_values(preds, metric, subset)
    return out


def _ci(res) -> tuple:
    return res.estimate, res.low, res.high


def score_table(cfg: AblationConfig, mats: Matrices) -> list[dict]:
    """One record per (row, condition, subset, metric): estimate, CI and gain vs the baseline row."""
    records = []
    for (row, cond, subset, metric), mat in mats.items():
        seeds, items, (arr,) = aligned([mat])
        if not items:
            continue
        est, low, high = _ci(paired_bootstrap([arr], mean_of, cfg.n_boot))
        rec = dict(row=row, oracle=cfg.rows[row].is_oracle, condition=cond, subset=subset, metric=metric,
                   n_seeds=len(seeds), n_items=len(items), estimate=est, ci_low=low, ci_high=high,
                   gain_pct=None, gain_low=None, gain_high=None)
        base = mats.get((cfg.baseline, cond, subset, metric))
        if base is not None and row != cfg.baseline and cond not in DERIVED:  # no gain for reference levels
            _, both_items, arrays = aligned([mat, base])
            if both_items:
                rec["gain_pct"], rec["gain_low"], rec["gain_high"] = _ci(
                    paired_bootstrap(arrays, relative_gain_pct, cfg.n_boot))
        records.append(rec)
    order = {r: i for i, r in enumerate(cfg.rows)}
    return sorted(records, key=lambda r: (order[r["row"]], r["condition"], r["subset"], r["metric"]))


def _diff(cfg: AblationConfig, a: ScoreMatrix | None, b: ScoreMatrix | None) -> dict | None:
    if a is None or b is None:
        return None
    seeds, items, arrays = aligned([a, b])
    if not items:
        return None
    res = paired_bootstrap(arrays, difference, cfg.n_boot)
    return {"estimate": res.estimate, "ci_low": res.low, "ci_high": res.high, "n_seeds": len(seeds),
            "n_items": len(items)}


def headline(cfg: AblationConfig, mats: Matrices) -> dict:
    """Treatment minus control on CP and DP over neutral-text items (normal audio)."""
    treat, control = cfg.headline
    return {metric: _diff(cfg, mats.get((treat, "normal", "neutral", metric)),
                      mats.get((control, "normal", "neutral", metric))) for metric in HEADLINE_METRICS}


def shuffled_drop(cfg: AblationConfig, mats: Matrices) -> dict:
    """Per row: normal minus shuffled audio on CP and DP (all items): what the model gets from listening."""
    return {row: {m: _diff(cfg, mats.get((row, "normal", "all", m)), mats.get((row, "shuffled", "all", m)))
                  for m in HEADLINE_METRICS} for row in cfg.rows}


def permuted_drop(cfg: AblationConfig, mats: Matrices) -> dict:
    """Per row with a metadata block: normal minus permuted metadata on CP and DP (all items), and the
    chance level a model that copies the block would fall to. Drop near 0: the row ignores the block;
    permuted score near chance: it answers from the block."""
    out = {}
    for row in cfg.rows:
        if mats.get((row, "permuted", "all", HEADLINE_METRICS[0])) is None:
            continue
        out[row] = {}
        for m in HEADLINE_METRICS:
            chance = mats.get((row, "chance", "all", m))
            _, items, arrays = aligned([chance]) if chance is not None else (None, [], None)
            out[row][m] = {"drop": _diff(cfg, mats.get((row, "normal", "all", m)), mats.get((row, "permuted", "all", m))),
                           "chance": float(arrays[0].mean()) if items else None}
    return out


def at_floor(records: list[dict]) -> bool:
    """Every row's normal-audio score is within AT_FLOOR of its empirical floor on every metric."""
    est = {(r["row"], r["subset"], r["metric"], r["condition"]): r["estimate"] for r in records}
    normal = [(k, v) for k, v in est.items() if k[3] == "normal" and k[1] == "all"]
    if not normal:
        return False
    return all(v is None or v <= (est.get((*k[:3], "floor")) or 0.0) + AT_FLOOR for k, v in normal)


def _fmt(x, pct: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.1f} %" if pct else f"{x:.3f}"


def _cell(rec: dict) -> str:
    text = f"{_fmt(rec['estimate'])} [{_fmt(rec['ci_low'])}, {_fmt(rec['ci_high'])}]"
    if rec["gain_pct"] is not None:
        text += f" ({_fmt(rec['gain_pct'], True)})"
    return text


def _table(cfg: AblationConfig, records: list[dict], cond: str, subset: str) -> list[str]:
    lines = ["| row | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for row in cfg.rows:
        cells = {r["metric"]: _cell(r) for r in records
                 if r["row"] == row and r["condition"] == cond and r["subset"] == subset}
        if cells:
            label = f"{row} (ORACLE)" if cfg.rows[row].is_oracle else row
            lines.append(f"| {label} | " + " | ".join(cells.get(m, "n/a") for m in METRICS) + " |")
    return lines


def _diff_text(d: dict | None) -> str:
    if d is None:
        return "n/a (rows not run)"
    sign = "above zero" if d["ci_low"] is not None and d["ci_low"] > 0 else "not above zero"
    return f"{_fmt(d['estimate'])} [{_fmt(d['ci_low'])}, {_fmt(d['ci_high'])}], interval {sign}"


def dp_asks_counts(cfg: AblationConfig) -> dict | None:
    """How the DP test items were told apart (emotion, gender, ...): by their recorded `asks` field, or by
    the question-text fallback. Every row scores the same test items, so the first finished result says it."""
    for row in cfg.rows:
        for seed in cfg.seeds:
            if is_finished(cfg.out, row, seed):
                scores = json.loads((result_dir(cfg.out, row, seed) / SCORES).read_text())
                return scores.get("scorers", {}).get("dp_asks")
    return None


def _asks_line(counts: dict | None) -> list[str]:
    if not counts:
        return []
    line = (f"DP test items: {counts.get('recorded', 0)} scored by their recorded `asks` field, "
            f"{counts.get('inferred', 0)} by the question-text fallback")
    if counts.get("inferred"):
        line += " (items made before the field existed, or foreign data)"
    by = counts.get("by_asks") or {}
    return [line + (f"; per target: {', '.join(f'{k} {v}' for k, v in sorted(by.items()))}" if by else "") + ".", ""]


def render_markdown(cfg: AblationConfig, records: list[dict], head: dict, drops: dict, permuted: dict,
                    asks: dict | None = None) -> str:
    treat, control = cfg.headline
    lines = [f"# Ablation `{cfg.name}`", ""]
    if at_floor(records):
        lines += [f"**Every row sits at its empirical floor (within {AT_FLOOR} on every metric): nothing measurable "
                  "was learned at this training length; the differences below are noise.**", ""]
    lines += [
             f"Seeds {cfg.seeds}; {cfg.train.steps} steps x batch {cfg.train.batch_size} for every row. "
             f"Cells: mean [95 % bootstrap CI over seeds and items] (relative gain vs `{cfg.baseline}`).", "",
             "Metrics (fixed before the runs):", *[f"- `{k}`: {v}" for k, v in METRICS.items()], ""]
    lines += _asks_line(asks)
    oracles = [r for r in cfg.rows if cfg.rows[r].is_oracle]
    if oracles:
        lines += [f"ORACLE rows (gold metadata at evaluation, an upper bound, not a method): {oracles}", ""]
    lines += [f"## Headline: `{treat}` - `{control}` on neutral-text items", ""]
    lines += [f"- {m}: {_diff_text(head.get(m))}" for m in HEADLINE_METRICS] + [""]
    for title, cond, subset in (("All test items", "normal", "all"), ("Neutral-text items", "normal", "neutral"),
                                ("Shuffled audio, all items", "shuffled", "all"),
                                ("Permuted metadata, all items (rows with a metadata block)", "permuted", "all"),
                                ("Empirical floor: each answer scored against another item's reference", "floor",
                                 "all")):
        lines += [f"## {title}", "", *_table(cfg, records, cond, subset), ""]
    lines += ["## Drop under shuffled audio (normal - shuffled, all items)", ""]
    lines += [f"- {row}: " + "; ".join(f"{m} {_diff_text(d)}" for m, d in per.items()) for row, per in drops.items()]
    lines += ["", "## Drop under permuted metadata (normal - permuted, all items; chance = score of copying the "
              "borrowed cue)", ""]
    lines += [f"- {row}: " + "; ".join(f"{m} {_diff_text(d['drop'])}, chance {_fmt(d['chance'])}"
                                       for m, d in per.items()) for row, per in permuted.items()]
    if not permuted:
        lines.append("- no row has a metadata block")
    return "\n".join(lines) + "\n"


def write_report(cfg: AblationConfig) -> dict:
    """Compute and write the report; returns {records, headline, shuffled_drop, paths}."""
    mats = load_matrices(cfg)
    records = score_table(cfg, mats)
    head, drops, permuted = headline(cfg, mats), shuffled_drop(cfg, mats), permuted_drop(cfg, mats)
    out = Path(cfg.out) / "report"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "report.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(records)
    asks = dp_asks_counts(cfg)
    md = render_markdown(cfg, records, head, drops, permuted, asks)
    (out / "report.md").write_text(md)
    doc = {"records": records, "headline": head, "shuffled_drop": drops, "permuted_drop": permuted,
           "at_floor": at_floor(records), "dp_asks": asks}
    (out / "report.json").write_text(json.dumps(doc, indent=2) + "\n")
    from paralm.runs.ablate.plot import plot_report

    plot_report(cfg, records, out / "report.png", head, at_floor=doc["at_floor"])
    return {**doc, "markdown": md, "paths": {k: str(out / f"report.{k}") for k in ("md", "csv", "json", "png")}}
