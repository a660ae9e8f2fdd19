"""Is the sweep's metric one the trials log? Said before a sweep runs (`--check`) and after it ran.

A sweep whose `metric.name` is never logged (`val_loss` where trials log `val/loss`, or a validation
metric in a config that never validates) used to run every trial and report `best val_loss=None`:
hours of compute with nothing to rank and nothing for bayes or hyperband to act on. Before the run,
`expected_metrics` predicts the names from the resolved trial config (what `paralm fit --print_config`
prints); after it, `sweep_metric_problem` reads what the trials actually wrote to their metrics files.
Names are those `paralm fit` logs with `self.log` (the ones the trial callback records): `train/loss`,
`val/loss` and one `<stage>/loss_<source>` per named data source, plus `train/nonfinite_skipped`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from paralm.runs.sweep.state import METRICS_FILE


def _source_names(sources) -> list[str]:
    return [str(s["name"]) for s in sources or [] if isinstance(s, dict) and s.get("name")]


def _validates(trainer: dict) -> bool:
    limit = trainer.get("limit_val_batches")
    return limit is None or float(limit) > 0


def expected_metrics(config: dict) -> set[str]:
    """Metric names a `paralm fit` run with this resolved config logs (see the module docstring)."""
    data, trainer = config.get("data") or {}, config.get("trainer") or {}
    names = {"train/loss", "train/nonfinite_skipped"}
    names |= {f"train/loss_{n}" for n in _source_names(data.get("train_sources"))}
    val = _source_names(data.get("val_sources"))
    if val and _validates(trainer):
        names |= {"val/loss"} | {f"val/loss_{n}" for n in val}
    return names


def metric_problem(metric: str, logged: Iterable[str], when: str) -> str | None:
    """One line when `metric` is not among `logged` (naming the ones that are), else None."""
    logged = sorted(set(logged))
    if metric in logged:
        return None
    shown = ", ".join(logged) if logged else "none (no validation ran)"
    return (f"the sweep metric {metric!r} is not among the metrics the trials {when}: {shown}; set metric.name "
            "in the sweep file to one of them")


def logged_in_trials(trial_dirs: Iterable[Path]) -> set[str]:
    """Every metric name the trials wrote to their metrics files (the sweep callback's records)."""
    names: set[str] = set()
    for folder in trial_dirs:
        path = Path(folder) / METRICS_FILE
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            names |= {k for k in row if not k.startswith("_") and k != "epoch"}
    return names


def sweep_metric_problem(metric: str, trial_dirs: list[Path]) -> str | None:
    """After a sweep: a line when trials ran but none ever logged `metric`, else None."""
    if not trial_dirs:
        return None
    return metric_problem(metric, logged_in_trials(trial_dirs), "logged")
