"""The ablation's summary run in W&B: the report's table, headline, drops and plot, in the ablation's group.

Each (row, seed) training is its own run, made by `paralm fit` itself (named `<row>-seed<S>`, grouped by
the ablation, with the full resolved config and the instruction used; see paralm/runs/ablate_fit.py).
What no single run holds is the comparison, so the report goes to one more run of the group,
`<ablation>-summary` (job type `summary`). Offline unless the ablation's `logging.wandb` says online;
nothing is logged with `disabled`.
"""

from __future__ import annotations

import os
from pathlib import Path

from paralm.runs.ablate_config import AblationConfig

COLUMNS = ("row", "oracle", "condition", "subset", "metric", "n_seeds", "n_items", "estimate", "ci_low", "ci_high")


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
