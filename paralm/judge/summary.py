"""Summaries of judged rows: score by question type and emotion, success rate, cost, injections.

Scores are means over judged rows only; unjudged rows are counted in `success_rate` and listed with
their reasons, never averaged in as 0. Rows whose answer was flagged as an injection attempt stay in
the score (the judge saw them fenced as data) but are counted and listed, and the score without them
is reported beside it, so a system that games the judge shows up as a gap between the two.
Never imports torch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from paralm.formats.predictions import QUESTION_TYPES
from paralm.judge.results import JudgedRow
from paralm.judge.rubrics import Rubric
from paralm.stats.bootstrap import mean_ci


def group_stats(rows: Sequence[JudgedRow]) -> dict:
    """n, judged count, success rate, mean score and mean rating of a group of rows."""
    judged = [r for r in rows if r.judged]
    n = len(rows)
    return {
        "n": n,
        "judged": len(judged),
        "success_rate": len(judged) / n if n else None,
        "score": sum(r.score for r in judged) / len(judged) if judged else None,
        "mean_rating": sum(r.rating for r in judged) / len(judged) if judged else None,
    }


def _grouped(rows: Sequence[JudgedRow], key: Callable[[JudgedRow], str], order: Sequence[str] = ()) -> dict:
    groups: dict[str, list[JudgedRow]] = {name: [] for name in order}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return {name: group_stats(members) for name, members in groups.items() if members}


def _injection(rows: Sequence[JudgedRow]) -> dict:
    flagged = [r for r in rows if r.injection_flags]
    clean = [r for r in rows if not r.injection_flags]
    return {
        "flagged": len(flagged),
        "by_flag": dict(Counter(flag for r in flagged for flag in r.injection_flags)),
        "items": [{"item_id": r.item_id, "flags": r.injection_flags, "rating": r.rating} for r in flagged],
        "score_flagged": group_stats(flagged)["score"],
        "score_unflagged": group_stats(clean)["score"],
    }


def summarize(rows: Sequence[JudgedRow], rubric: Rubric, judge_model: str, usage: dict | None = None,
              seed: int = 0) -> dict:
    """The summary written to summary.json (see the module docstring for what counts where)."""
    overall = group_stats(rows)
    scores = [r.score for r in rows if r.judged]
    ci = mean_ci(scores, seed=seed).as_dict() if scores else None
    unjudged = [r for r in rows if not r.judged]
    summary = {
        "judge_model": judge_model,
        "rubric": rubric.describe(),
        **overall,
        "score_ci": ci,
        "by_type": _grouped(rows, lambda r: r.prediction.type, QUESTION_TYPES),
        "by_emotion": _grouped(rows, lambda r: r.prediction.emotion or "unknown"),
        "unjudged_reasons": dict(Counter(r.reason for r in unjudged)),
        "unjudged_items": [{"item_id": r.item_id, "reason": r.reason} for r in unjudged],
        "injection": _injection(rows),
        "tokens": {
            "prompt": sum(r.prompt_tokens for r in rows),
            "completion": sum(r.completion_tokens for r in rows),
        },
        "cached_rows": sum(r.cached for r in rows),
        "reasks": _reasks(rows),
        "usage": usage,
    }
    if any(r.prediction.neutral_text is not None for r in rows):
        summary["by_neutral_text"] = _grouped(rows, lambda r: _neutral_name(r.prediction.neutral_text))
    if len({r.prediction.system for r in rows}) > 1:
        summary["by_system"] = _grouped(rows, lambda r: r.prediction.system or "unknown")
    return summary


def _reasks(rows: Sequence[JudgedRow]) -> dict:
    """Re-asks after unreadable replies: how many, on how many rows, why, and how many then got judged."""
    asked_again = [r for r in rows if r.reasks]
    return {
        "total": sum(r.reasks for r in rows),
        "rows": len(asked_again),
        "judged_after_reask": sum(r.judged for r in asked_again),
        "by_reason": dict(Counter(reason for r in rows for reason in r.reask_reasons)),
    }


def _neutral_name(value: bool | None) -> str:
    return {True: "neutral_text", False: "emotional_text", None: "unknown"}[value]


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _reask_line(reasks: dict | None) -> str:
    if not reasks or not reasks["total"]:
        return "- re-asks after unreadable replies: none"
    return (f"- re-asks after unreadable replies: {reasks['total']} on {reasks['rows']} rows "
            f"({reasks['judged_after_reask']} of them then judged); reasons {reasks['by_reason']}")


def _usage_warnings(usage: dict) -> list[str]:
    """Lines for replies billed at an estimate (server usage missing or implausible) and a budget stop."""
    lines = []
    missing, invalid = usage.get("usage_missing") or 0, usage.get("usage_invalid") or 0
    if missing or invalid:
        lines.append(f"- the server's token counts were missing on {missing} and implausible on {invalid} "
                     "replies: those were billed at an estimate from the request and reply size")
    if usage.get("budget_refused"):
        lines.append(f"- stopped at the budget: {usage['budget_refused']} request(s) not sent; rerun with a "
                     "larger --budget-usd to finish")
    return lines


def _table(title: str, groups: dict) -> list[str]:
    lines = [f"### {title}", "", "| group | n | judged | success | score |", "|---|---:|---:|---:|---:|"]
    for name, g in groups.items():
        lines.append(f"| {name} | {g['n']} | {g['judged']} | {_fmt(g['success_rate'], 3)} | {_fmt(g['score'])} |")
    return lines + [""]


def render_markdown(summary: dict) -> str:
    """A human-readable summary.md."""
    rub = summary["rubric"]
    ci = summary["score_ci"] or {}
    usage = summary.get("usage") or {}
    inj = summary["injection"]
    lines = [
        f"# Judge summary: {rub['name']} v{rub['version']} by {summary['judge_model']}",
        "",
        f"- score: **{_fmt(summary['score'])}** / 100 (95% CI {_fmt(ci.get('low'))} .. {_fmt(ci.get('high'))})",
        f"- judged {summary['judged']} of {summary['n']} (success rate {_fmt(summary['success_rate'], 3)});"
        " unjudged rows are excluded from every mean",
        f"- unjudged reasons: {summary['unjudged_reasons'] or 'none'}",
        _reask_line(summary.get("reasks")),
        f"- injection attempts flagged: {inj['flagged']} {inj['by_flag'] or ''}; score without them "
        f"{_fmt(inj['score_unflagged'])}, flagged rows alone {_fmt(inj['score_flagged'])}",
        f"- tokens: {summary['tokens']['prompt']} prompt + {summary['tokens']['completion']} completion; "
        f"this run sent {usage.get('requests_sent', '-')} requests, cost {usage.get('cost_usd', 0.0):.4f} USD",
        *_usage_warnings(usage),
        f"- rubric sha256: `{rub['sha256']}`",
        "",
    ]
    lines += _table("By question type", summary["by_type"])
    lines += _table("By emotion", summary["by_emotion"])
    for extra, title in (("by_neutral_text", "By transcript neutrality"), ("by_system", "By system")):
        if extra in summary:
            lines += _table(title, summary[extra])
    return "\n".join(lines)
