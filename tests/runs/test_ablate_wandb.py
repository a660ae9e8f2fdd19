"""The ablation's W&B runs (offline here): the report goes to a summary run of its group (table and plot
as files), and a row evaluated on another row's weights (the oracle) gets its own `<row>-seed<S>` run."""

import json

import matplotlib
import pytest
import yaml
from ablatekit import kit_ablation
from wandb_offline import records

from paralm.runs.ablate import command as ablate
from paralm.runs.ablate.config import parse_ablation
from paralm.runs.ablate.wandb import COLUMNS, log_eval_run, log_summary

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


ROWS = {"explicit": {"sources": {"general": 1.0},
                     "train_prompt": {"mode": "explicit", "metadata": "pred:acoustic_fit@oof"},
                     "eval_prompt": {"mode": "explicit", "metadata": "pred:acoustic_fit"}},
        "oracle": {"sources": {"general": 1.0}, "note": "ORACLE",
                   "train_prompt": {"mode": "explicit", "metadata": "pred:acoustic_fit@oof"},
                   "eval_prompt": {"mode": "explicit", "metadata": "gold"}}}
METRICS = {"all": {"dp_acc": {"mean": 0.75, "n": 8}, "c_f1": {"mean": None, "n": 0}}}
ORACLE_SCORES = {"row": "oracle", "seed": 1, "oracle": True, "steps": 4, "trained_by": "explicit",
                 "instruction": "Q: {question} A: {audio}", "normal": METRICS,
                 "permuted": {"all": {"dp_acc": {"mean": 0.25, "n": 8}}}, "chance": {"all": {"dp_acc": {"mean": 0.3}}}}


def _offline_run(folder):
    """(run record, config, summary) of the one offline W&B run under `folder`."""
    (path,) = folder.glob("wandb/offline-run-*/run-*.wandb")
    run, config, summary = None, {}, {}
    for rec in records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            run = rec.run
            config.update({i.key: json.loads(i.value_json) for i in rec.run.config.update})
        elif kind == "config":
            config.update({i.key: json.loads(i.value_json) for i in rec.config.update})
        elif kind == "summary":
            summary.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.summary.update})
    return run, config, summary


def test_oracle_row_gets_its_own_eval_run_in_the_ablation_group_with_its_scores(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    doc = kit_ablation(tmp_path, tmp_path / "shards", rows=ROWS, headline=["oracle", "explicit"], baseline="explicit",
                       logging={"wandb": "offline", "project": "p"})
    cfg = parse_ablation(doc)
    trained = tmp_path / "out" / "runs" / "explicit-seed1"
    trained.mkdir(parents=True)
    (trained / "config.yaml").write_text(yaml.safe_dump({"trainer": {"max_steps": 4}, "seed_everything": 1,
                                                          "data": {"eval_prompt": {"metadata": "pred:acoustic_fit"}}}))
    folder = log_eval_run(cfg, ORACLE_SCORES)
    assert folder.parent == tmp_path / "out" / "runs" / "oracle-seed1" / "wandb"
    run, config, summary = _offline_run(tmp_path / "out" / "runs" / "oracle-seed1")
    assert (run.display_name, run.run_group, run.job_type) == ("oracle-seed1", "kit", "eval")
    assert config["trained_by"] == "explicit" and config["oracle"] is True and config["seed"] == 1
    assert config["trainer"] == {"max_steps": 4}  # the resolved config of the training it reuses
    assert config["data"]["eval_prompt"]["metadata"] == "gold"  # ... with its own eval prompt
    assert config["data"]["eval_prompt"]["instruction"] == config["instruction"] == ORACLE_SCORES["instruction"]
    assert summary["normal/all/dp_acc"] == 0.75 and summary["permuted/all/dp_acc"] == 0.25
    assert summary["chance/all/dp_acc"] == 0.3 and "normal/all/c_f1" not in summary  # no value is not 0


def test_a_row_that_trained_its_weights_gets_no_second_run(tmp_path):
    cfg = parse_ablation(kit_ablation(tmp_path, tmp_path / "shards", rows=ROWS, headline=["oracle", "explicit"],
                                      baseline="explicit", logging={"wandb": "offline", "project": "p"}))
    assert log_eval_run(cfg, dict(ORACLE_SCORES, row="explicit")) is None  # `paralm fit` made explicit-seed1
    assert not (tmp_path / "out" / "runs" / "explicit-seed1").exists()


def test_every_evaluated_row_of_a_training_is_offered_to_the_eval_run_logger(tmp_path, monkeypatch):
    cfg = parse_ablation(kit_ablation(tmp_path, tmp_path / "shards", rows=ROWS, headline=["oracle", "explicit"],
                                      baseline="explicit"))
    def trained(cfg, names, seed, paths, evaluate):  # the scores train_and_evaluate returns, one per row
        return [{"row": n, "seed": seed, "trained_by": names[0]} for n in evaluate]

    logged = []
    monkeypatch.setattr("paralm.runs.ablate.run.train_and_evaluate", trained)
    monkeypatch.setattr("paralm.runs.ablate.wandb.log_eval_run", lambda cfg, scores: logged.append(scores))
    ablate._run_pairs(cfg, [(["explicit", "oracle"], 0)], {})
    assert [(s["row"], s["trained_by"]) for s in logged] == [("explicit", "explicit"), ("oracle", "explicit")]
