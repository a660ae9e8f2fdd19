"""The quick ablation (1 seed, 2 rows, a few steps): the report's numbers are those of the result files."""

import csv
import json
import math
from pathlib import Path

import pytest
from ablatekit import kit_ablation, shared_kit, write_ablation

from paralm.formats.predictions import read_predictions
from paralm.runs.ablate import main
from paralm.runs.ablate.metrics import item_values


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quick")
    shards, cache = shared_kit(tmp_path_factory)
    rows = {
        "baseline": {"sources": {"general": 1.0}},
        "oracle": {"sources": {"general": 1.0, "implicit": 1.0},
                   "train_prompt": {"mode": "explicit", "metadata": "pred:acoustic_fit@oof"},
                   "eval_prompt": {"mode": "explicit", "metadata": "gold"}},
    }
    path = write_ablation(tmp, kit_ablation(tmp, shards, rows=rows, cache=cache, headline=["oracle", "baseline"]))
    assert main([str(path)]) == 0
    return Path(tmp) / "out"


def _scores(out: Path, row: str) -> dict:
    return json.loads((out / "results" / row / "seed0" / "scores.json").read_text())


def _close(a, b) -> bool:
    return (a is None and b is None) or math.isclose(float(a), float(b), abs_tol=1e-9)


def test_report_csv_equals_the_per_row_result_files(finished):
    with open(finished / "report" / "report.csv") as f:
        records = list(csv.DictReader(f))
    assert {r["row"] for r in records} == {"baseline", "oracle"}
    for rec in records:
        per_row = _scores(finished, rec["row"])[rec["condition"]][rec["subset"]][rec["metric"]]
        assert _close(rec["estimate"], per_row["mean"]), rec
        assert int(rec["n_items"]) == per_row["n"]
        assert float(rec["ci_low"]) <= float(rec["estimate"]) <= float(rec["ci_high"])


def test_scores_are_the_means_of_the_saved_predictions(finished):
    preds = read_predictions(finished / "results" / "oracle" / "seed0" / "predictions_shuffled.jsonl")
    for metric, value in _scores(finished, "oracle")["shuffled"]["all"].items():
        values = list(item_values(preds, metric).values())
        assert _close(value["mean"], sum(values) / len(values))


def test_headline_and_shuffled_drop_are_differences_of_row_means(finished):
    doc = json.loads((finished / "report" / "report.json").read_text())
    treat, base = _scores(finished, "oracle")["normal"], _scores(finished, "baseline")["normal"]
    for metric in ("cp_mention", "dp_acc"):
        want = treat["neutral"][metric]["mean"] - base["neutral"][metric]["mean"]
        assert _close(doc["headline"][metric]["estimate"], want)
        drop = treat["all"][metric]["mean"] - _scores(finished, "oracle")["shuffled"]["all"][metric]["mean"]
        assert _close(doc["shuffled_drop"]["oracle"][metric]["estimate"], drop)


def test_report_files_exist_and_the_oracle_is_labelled(finished):
    md = (finished / "report" / "report.md").read_text()
    assert "oracle (ORACLE)" in md and "## Headline" in md
    assert (finished / "report" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    preds = read_predictions(finished / "results" / "baseline" / "seed0" / "predictions.jsonl")
    assert len(preds) == 24 and {p.type for p in preds} == {"C", "CP", "DP"}


def test_rerun_skips_finished_rows(finished, capsys):
    scores = finished / "results" / "baseline" / "seed0" / "scores.json"
    before = scores.stat().st_mtime_ns
    assert main([str(finished.parent / "ablation.yaml")]) == 0
    assert scores.stat().st_mtime_ns == before
    assert "2 finished (row, seed) pair(s) kept" in capsys.readouterr().out


def test_report_says_how_many_dp_items_were_told_apart_by_asks_and_how_many_by_the_fallback(finished):
    preds = read_predictions(finished / "results" / "baseline" / "seed0" / "predictions.jsonl")
    dp = [p for p in preds if p.type == "DP"]
    recorded = sum(1 for p in dp if (p.label_kind or p.asks) is not None)
    doc = json.loads((finished / "report" / "report.json").read_text())
    assert doc["dp_asks"]["recorded"] == recorded and doc["dp_asks"]["inferred"] == len(dp) - recorded
    md = (finished / "report" / "report.md").read_text()
    assert f"DP test items: {recorded} scored by their recorded `asks` field, {len(dp) - recorded} by" in md


def test_the_before_after_benchmark_rescores_saved_predictions_with_both_rules(finished, capsys):
    import runpy
    import sys

    from paralm.eval import scorers

    saved = scorers.row_asks
    argv, sys.argv = sys.argv, ["demo_metric_before_after.py", str(finished),
                                "--ablation", str(finished.parent / "ablation.yaml")]
    try:
        with pytest.raises(SystemExit) as done:
            runpy.run_path(str(Path(__file__).resolve().parents[2] / "benchmarks" / "demo_metric_before_after.py"),
                           run_name="__main__")
    finally:
        sys.argv = argv
    assert done.value.code == 0 and scorers.row_asks is saved  # the old rule was put back
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| baseline") or line.startswith("| oracle")]
    assert len(rows) == 2 and all(line.count("[") == 2 for line in rows), table
