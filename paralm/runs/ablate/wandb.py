"""The ablation's W&B runs beyond the trainings: evaluation-only rows and the summary run of the group.

Each (row, seed) training is its own run, made by `paralm fit` itself (named `<row>-seed<S>`, grouped by
the ablation, with the full resolved config and the instruction used; see paralm/runs/ablate/fit.py).
A row that trains nothing because it shares another row's weights (the oracle: explicit's training,
gold metadata at evaluation) would have no run at all, so it gets its own `<row>-seed<S>` run in the
group (job type `eval`): the resolved config of the training it reuses with its own eval prompt and
instruction, `trained_by`, and its scores (`<condition>/<subset>/<metric>` in the summary).
What no single run holds is the comparison, so the report goes to one more run of the group,
`<ablation>-summary` (job type `summary`). Offline unless the ablation's `logging.wandb` says online
(an explicit WANDB_MODE in the environment wins, as for `paralm fit`); nothing is logged with `disabled`.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from paralm.runs.ablate.config import AblationConfig

SCORED = ("normal", "shuffled", "permuted", "floor", "chance")  # the levels scores.json holds per subset
COLUMNS = ("row", "oracle", "condition", "subset", "metric", "n_seeds", "n_items", "estimate", "ci_low", "ci_high")


def _mode(cfg: AblationConfig) -> str:
    from paralm.wandb_run import resolve_mode

    return resolve_mode(cfg.logging.wandb)


def score_summary(scores: dict) -> dict[str, float]:
    """`<condition>/<subset>/<metric>` -> mean, for every level of a scores.json that has a value."""
    return {f"{level}/{subset}/{metric}": v["mean"]
            for level in SCORED for subset, per in (scores.get(level) or {}).items()
            for metric, v in per.items() if v.get("mean") is not None}


def eval_run_config(cfg: AblationConfig, scores: dict) -> dict:
    """The resolved `paralm fit` config of the training the row reuses, with the row's own eval prompt."""
    from dataclasses import asdict, replace

    from paralm.runs.ablate.fit import run_name, runs_root

    trained = runs_root(cfg) / run_name(scores["trained_by"], scores["seed"]) / "config.yaml"
    config = yaml.safe_load(trained.read_text()) if trained.exists() else {}
    prompt = replace(cfg.rows[scores["row"]].eval_prompt, instruction=scores["instruction"])
    config.setdefault("data", {})["eval_prompt"] = asdict(prompt)
    config.update(ablation=cfg.name, row=scores["row"], seed=scores["seed"], oracle=bool(scores.get("oracle")),
                  trained_by=scores["trained_by"], instruction=scores["instruction"])
    return config


def log_eval_run(cfg: AblationConfig, scores: dict) -> Path | None:
    """The `<row>-seed<S>` run of a row evaluated on another row's weights (None: disabled, or the row
    trained itself and `paralm fit` made its run); returns the run's local folder."""
    if cfg.logging.wandb == "disabled" or scores["trained_by"] == scores["row"]:
        return None
    import wandb

    from paralm.runs.ablate.fit import run_name, runs_root

    os.environ.setdefault("WANDB_SILENT", "true")
    name = run_name(scores["row"], scores["seed"])
    folder = runs_root(cfg) / name
    folder.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=cfg.logging.project, group=cfg.name, name=name, job_type="eval", mode=_mode(cfg),
                     dir=str(folder), config=eval_run_config(cfg, scores), reinit="finish_previous")
    try:
        run.summary.update(score_summary(scores))
        return Path(run.dir).parent
    finally:
        run.finish()


def log_summary(cfg: AblationConfig, report: dict, png: Path) -> Path | None:
    """Log the report to the group's summary run; returns the run's local folder (None when disabled)."""
    if cfg.logging.wandb == "disabled":
        return None
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    folder = Path(cfg.out) / "report"
    run = wandb.init(project=cfg.logging.project, group=cfg.name, name=f"{cfg.name}-summary", job_type="summary",
                     mode="online" if cfg.logging.wandb == "online" else "offline", dir=str(folder),
                     config={"ablation": cfg.name, "seeds": cfg.seeds, "rows": list(cfg.rows),
                             "baseline": cfg.baseline, "headline": list(cfg.headline), "steps": cfg.train.steps},
                     reinit="finish_previous")
    try:
        table = wandb.Table(columns=list(COLUMNS),
                            data=[[rec.get(c) for c in COLUMNS] for rec in report["records"]])
        run.log({"report/table": table, "report/plot": wandb.Image(str(png))})
        for metric, diff in (report.get("headline") or {}).items():
            if diff is not None:
                run.summary[f"headline/{metric}"] = diff["estimate"]
        for row, per in (report.get("permuted_drop") or {}).items():
            for metric, d in per.items():
                if d["drop"] is not None:
                    run.summary[f"permuted_drop/{row}/{metric}"] = d["drop"]["estimate"]
        run.summary["at_floor"] = bool(report.get("at_floor"))
        return Path(run.dir).parent
    finally:
        run.finish()
