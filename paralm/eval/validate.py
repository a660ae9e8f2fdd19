"""`paralm judge-validate`: does the judge agree with classification metrics, and with itself?

    paralm judge-validate baseline=runs/base/judge implicit=runs/impl/judge both=runs/both/judge --out DIR

Each RUN is a judged.jsonl (or a folder holding one), optionally prefixed `NAME=`; without a name,
the rows' `system` field or the folder name is used. Two measurements:

1. Validity (the paper's check): on label questions (DP rows with one gold label) each system gets a
   judge score (mean over judged rows) and a label accuracy (paralm.eval.scorers; unjudged rows still
   count for accuracy). Spearman and Pearson across systems (first run of each system), with seeded
   bootstrap CIs that resample items within every system; plus per-item rating vs correctness over
   all systems' items.
2. Reliability: every further run of a system (another judge model, or a repeated judgement with a
   new --sample-index) is compared with that system's first run on the items both judged: Cohen's
   kappa with quadratic weights, exact agreement and Spearman.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paralm.eval.scorers import classification_metrics, label_outcomes
from paralm.eval.stats import exact_agreement, pearson, quadratic_kappa, spearman
from paralm.eval.validate_report import render_markdown, systems_csv
from paralm.fault.exits import EXIT_USER_ERROR
from paralm.formats.jsonl import write_text_atomic
from paralm.judge.results import JudgedRow, read_judged
from paralm.judge.rubrics import get_rubric
from paralm.stats.bootstrap import bootstrap_ci

MIN_SYSTEMS = 3
CORRELATIONS = {"spearman": spearman, "pearson": pearson}


@dataclass
class JudgeRun:
    """One judged predictions file of one system."""

    name: str
    source: str
    rows: list[JudgedRow]

    @property
    def label(self) -> str:
        """System name plus what judged it (model, rubric, repeated-judgement index)."""
        first = self.rows[0] if self.rows else None
        what = f"{first.judge_model}, {first.rubric}, sample {first.sample_index}" if first else "empty"
        return f"{self.name} [{what}]"

    def label_items(self) -> np.ndarray:
        """(n, 2) array per label item: (judge score or NaN when unjudged, 1.0 if label correct)."""
        by_id = {r.item_id: r for r in self.rows}
        outcomes = label_outcomes(r.prediction for r in self.rows)
        pairs = [(by_id[o.item_id].score if by_id[o.item_id].judged else np.nan, float(o.correct)) for o in outcomes]
        return np.asarray(pairs, dtype=float).reshape(-1, 2)


def load_run(spec: str) -> JudgeRun:
    """Read one RUN argument (`[NAME=]PATH`)."""
    name, sep, path = spec.partition("=")
    if not sep:
        name, path = "", spec
    rows = read_judged(path)
    if not name:
        systems = {r.prediction.system for r in rows} - {None}
        p = Path(path)
        name = systems.pop() if len(systems) == 1 else (p.name if p.is_dir() else p.parent.name)
    return JudgeRun(name=name, source=path, rows=rows)


def _system_means(*groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, accs = [], []
    for g in groups:
        finite = g[np.isfinite(g[:, 0]), 0]
        scores.append(finite.mean() if len(finite) else np.nan)
        accs.append(g[:, 1].mean())
    return np.asarray(scores), np.asarray(accs)


def system_correlations(groups: list[np.ndarray], n_resamples: int, confidence: float, seed: int) -> dict:
    """Spearman and Pearson (with CIs) between per-system judge score and accuracy."""
    if len(groups) < MIN_SYSTEMS:
        return {"note": f"needs at least {MIN_SYSTEMS} systems with label items, got {len(groups)}"}
    out = {}
    for name, fn in CORRELATIONS.items():

        def stat(*gs: np.ndarray, fn=fn) -> float:
            scores, accs = _system_means(*gs)
            return fn(scores, accs) if np.isfinite(scores).all() else float("nan")

        out[name] = bootstrap_ci(groups, stat, n_resamples, confidence, seed).as_dict()
    return out


def item_correlations(items: np.ndarray, n_resamples: int, confidence: float, seed: int) -> dict:
    """Spearman and Pearson (point-biserial) between item rating and label correctness, pooled."""
    items = items[np.isfinite(items[:, 0])]
    if len(items) < 2:
        return {"note": "needs at least 2 judged label items"}
    return {
        name: bootstrap_ci([items], lambda g, fn=fn: fn(g[:, 0], g[:, 1]), n_resamples, confidence, seed).as_dict()
        for name, fn in CORRELATIONS.items()
    }


def agreement(first: JudgeRun, other: JudgeRun) -> dict:
    """Agreement of two runs of one system on the items both judged (ratings, not scores)."""
    a = {r.item_id: r.rating for r in first.rows if r.judged}
    b = {r.item_id: r.rating for r in other.rows if r.judged}
    shared = sorted(set(a) & set(b))
    out = {"system": first.name, "a": first.label, "b": other.label, "n_both_judged": len(shared)}
    if not shared:
        return {**out, "note": "no item judged by both"}
    ra, rb = np.array([a[i] for i in shared]), np.array([b[i] for i in shared])
    rho = spearman(ra, rb)
    out["spearman"] = None if np.isnan(rho) else rho
    rubrics = {first.rows[0].rubric, other.rows[0].rubric}
    if len(rubrics) > 1:
        return {**out, "note": f"different rubrics {sorted(rubrics)}: kappa and exact agreement need one scale"}
    rubric = get_rubric(rubrics.pop())
    kappa = quadratic_kappa(ra, rb, rubric.min_rating, rubric.max_rating)
    return {**out, "kappa_quadratic": None if np.isnan(kappa) else kappa, "exact_agreement": exact_agreement(ra, rb)}


def _system_row(run: JudgeRun, items: np.ndarray) -> dict:
    outcomes = label_outcomes(r.prediction for r in run.rows)
    finite = items[np.isfinite(items[:, 0]), 0] if len(items) else np.array([])
    return {
        "system": run.name,
        "judge": run.label,
        "label_items": int(len(items)),
        "judged_label_items": int(len(finite)),
        "judge_score": float(finite.mean()) if len(finite) else None,
        "accuracy": float(items[:, 1].mean()) if len(items) else None,
        "emotion_macro_f1": classification_metrics(outcomes, "emotion")["macro_f1"],
    }


def validate_runs(runs: list[JudgeRun], n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> dict:
    """Validity across systems and reliability within systems; see the module docstring."""
    firsts: dict[str, JudgeRun] = {}
    for run in runs:
        firsts.setdefault(run.name, run)
    items = {name: run.label_items() for name, run in firsts.items()}
    systems = [_system_row(run, items[name]) for name, run in firsts.items()]
    usable = [items[s["system"]] for s in systems if s["judge_score"] is not None]
    pooled = np.concatenate([g for g in items.values()]) if items else np.zeros((0, 2))
    return {
        "n_resamples": n_resamples,
        "confidence": confidence,
        "seed": seed,
        "systems": systems,
        "system_level": system_correlations(usable, n_resamples, confidence, seed),
        "item_level": item_correlations(pooled, n_resamples, confidence, seed),
        "agreement": [agreement(firsts[run.name], run) for run in runs if run is not firsts[run.name]],
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="paralm judge-validate",
                                description="Correlate judge scores with label accuracy; judge agreement.")
    p.add_argument("runs", nargs="+", help="[NAME=]PATH of judged.jsonl files or folders holding one")
    p.add_argument("--out", required=True, help="folder for validation.json, validation.md, systems.csv")
    p.add_argument("--n-resamples", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--confidence", type=float, default=0.95, help="confidence interval coverage")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    return p


def main_validate(argv: list[str] | None = None) -> int:
    """Entry point of `paralm judge-validate`; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        runs = [load_run(spec) for spec in args.runs]
        result = validate_runs(runs, args.n_resamples, args.confidence, args.seed)
    except FileNotFoundError as e:
        print(f"paralm judge-validate: error: {e.filename} does not exist (each RUN is a judged.jsonl "
              "written by `paralm judge`, or its folder)", file=sys.stderr)
        return EXIT_USER_ERROR
    except ValueError as e:
        print(f"paralm judge-validate: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    out = Path(args.out)
    write_text_atomic(out / "validation.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(out / "validation.md", render_markdown(result))
    write_text_atomic(out / "systems.csv", systems_csv(result["systems"]))
    rho = result["system_level"].get("spearman", {}).get("estimate")
    print(f"{len(result['systems'])} systems, system-level Spearman {rho} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main_validate())
