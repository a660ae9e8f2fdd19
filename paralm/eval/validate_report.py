"""Human-readable output of `paralm judge-validate`: a markdown report and a per-system CSV."""

from __future__ import annotations

import csv
import io

SYSTEM_COLUMNS = ("system", "judge", "label_items", "judged_label_items", "judge_score", "accuracy",
                  "emotion_macro_f1")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ci_line(name: str, ci: dict) -> str:
    return (f"| {name} | {_fmt(ci.get('estimate'))} | {_fmt(ci.get('low'))} .. {_fmt(ci.get('high'))} | "
            f"{ci.get('n_valid', 0)}/{ci.get('n_resamples', 0)} |")


def _correlation_section(title: str, block: dict) -> list[str]:
    lines = [f"## {title}", ""]
    if "note" in block:
        return lines + [f"Not computed: {block['note']}.", ""]
    lines += ["| statistic | estimate | CI | valid resamples |", "|---|---:|---:|---:|"]
    lines += [_ci_line(name, block[name]) for name in ("spearman", "pearson")]
    return lines + [""]


def render_markdown(result: dict) -> str:
    """validation.md: systems table, the two correlation tables, agreement pairs."""
    pct = round(result["confidence"] * 100)
    lines = [
        "# Judge validation",
        "",
        f"Bootstrap: {result['n_resamples']} resamples of items within each system, seed {result['seed']}, "
        f"{pct}% percentile intervals. Label accuracy counts answers without a single label as wrong.",
        "",
        "## Systems (label questions)",
        "",
        "| system | judge | items | judged | judge score | accuracy | emotion macro-F1 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for s in result["systems"]:
        lines.append(f"| {s['system']} | {s['judge']} | {s['label_items']} | {s['judged_label_items']} | "
                     f"{_fmt(s['judge_score'], 1)} | {_fmt(s['accuracy'])} | {_fmt(s['emotion_macro_f1'])} |")
    lines.append("")
    lines += _correlation_section("Judge score vs accuracy, across systems", result["system_level"])
    lines += _correlation_section("Item rating vs correctness, pooled", result["item_level"])
    lines += ["## Agreement between runs of the same system", ""]
    if not result["agreement"]:
        lines.append("No system has a second run (another judge or a repeated judgement).")
    for pair in result["agreement"]:
        detail = pair.get("note") or (f"quadratic kappa {_fmt(pair.get('kappa_quadratic'))}, exact agreement "
                                      f"{_fmt(pair.get('exact_agreement'))}")
        lines.append(f"- {pair['a']} vs {pair['b']}: {pair['n_both_judged']} items, {detail}, "
                     f"Spearman {_fmt(pair.get('spearman'))}")
    return "\n".join(lines) + "\n"


def systems_csv(systems: list[dict]) -> str:
    """systems.csv: one row per system."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SYSTEM_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(systems)
    return buf.getvalue()
