"""The ablation's report goes to a summary run of its W&B group (offline here): table and plot as files."""

import json

import matplotlib
import pytest
from test_ablate_kit import kit_ablation

from paralm.runs.ablate_config import parse_ablation
from paralm.runs.ablate_wandb import COLUMNS, log_summary

matplotlib.use("Agg")
REPORT = {"records": [{"row": "explicit", "oracle": False, "condition": "permuted", "subset": "all",
                       "metric": "dp_acc", "n_seeds": 1, "n_items": 8, "estimate": 0.25, "ci_low": 0.0,
                       "ci_high": 0.5}],
          "headline": {"dp_acc": {"estimate": 0.125}, "cp_mention": None},
          "permuted_drop": {"explicit": {"dp_acc": {"drop": {"estimate": 0.5}, "chance": 0.25}}}, "at_floor": False}


def test_disabled_logging_makes_no_summary_run(tmp_path):
    cfg = parse_ablation(kit_ablation(tmp_path, tmp_path / "shards"))
    assert log_summary(cfg, REPORT, tmp_path / "none.png") is None
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_summary_run_of_the_group_holds_the_report_table_and_plot(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = parse_ablation(kit_ablation(tmp_path, tmp_path / "shards", logging={"wandb": "offline", "project": "p"}))
    (tmp_path / "out" / "report").mkdir(parents=True)
    plt.plot([0, 1])
    plt.savefig(tmp_path / "plot.png")
    run = log_summary(cfg, REPORT, tmp_path / "plot.png")
    assert run.name.startswith("offline-run-") and run.parent == tmp_path / "out" / "report" / "wandb"
    table = json.loads(next((run / "files" / "media" / "table").rglob("*.table.json")).read_text())
    assert table["columns"] == list(COLUMNS)
    assert table["data"] == [["explicit", False, "permuted", "all", "dp_acc", 1, 8, 0.25, 0.0, 0.5]]
    assert list((run / "files" / "media" / "images" / "report").glob("plot_*.png"))
