"""`paralm judge-validate` on synthetic systems with a known link between judge and accuracy."""

import json

import numpy as np
import pytest

from paralm.eval.validate import load_run, main_validate, validate_runs
from paralm.formats.predictions import PredictionRow
from paralm.judge.results import JudgedRow, write_judged
from paralm.judge.rubrics import get_rubric

EMOTIONS = ("angry", "happy", "sad", "neutral")
ACCURACIES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
N_ITEMS = 60
RUBRIC = get_rubric("reference_match")


def system_rows(name: str, accuracy: float, ratings: list[int] | None = None, model: str = "judge-a",
                sample_index: int = 0) -> list[JudgedRow]:
    """DP rows whose first `accuracy * N_ITEMS` answers are right; rating 5 when right, else 1."""
    rows = []
    for j in range(N_ITEMS):
        gold = EMOTIONS[j % 4]
        correct = j < round(accuracy * N_ITEMS)
        answer = f"The speaker sounds {gold if correct else EMOTIONS[(j + 1) % 4]}."
        pred = PredictionRow(key=f"item{j}", question="How does the speaker feel?", type="DP",
                             reference=f"She is {gold}.", answer=answer, emotion=gold, system=name)
        rating = (5 if correct else 1) if ratings is None else ratings[j]
        rows.append(JudgedRow(prediction=pred, status="judged", rating=rating, score=RUBRIC.score(rating),
                              rationale="r", rubric=RUBRIC.name, rubric_version=RUBRIC.version,
                              rubric_sha256=RUBRIC.sha256, judge_model=model, sample_index=sample_index))
    return rows


def write_systems(tmp_path, systems: dict[str, list[JudgedRow]]) -> list[str]:
    specs = []
    for name, rows in systems.items():
        write_judged(tmp_path / name / "judged.jsonl", rows)
        specs.append(str(tmp_path / name))
    return specs


def test_monotone_link_gives_spearman_and_pearson_one(tmp_path):
    specs = write_systems(tmp_path, {f"s{i}": system_rows(f"s{i}", a) for i, a in enumerate(ACCURACIES)})
    result = validate_runs([load_run(s) for s in specs], n_resamples=300, seed=0)
    assert [s["accuracy"] for s in result["systems"]] == pytest.approx(list(ACCURACIES))
    assert [s["judge_score"] for s in result["systems"]] == pytest.approx([20 * (1 + 4 * a) for a in ACCURACIES])
    assert result["system_level"]["spearman"]["estimate"] == pytest.approx(1.0)
    assert result["system_level"]["pearson"]["estimate"] == pytest.approx(1.0)
    assert result["item_level"]["spearman"]["estimate"] == pytest.approx(1.0)
    assert result["system_level"]["spearman"]["low"] > 0.5


def test_shuffled_judge_scores_give_an_interval_that_spans_zero(tmp_path):
    rng = np.random.default_rng(11)
    pooled = [r.rating for a in ACCURACIES for r in system_rows("x", a)]
    shuffled = rng.permutation(pooled).tolist()
    systems = {f"s{i}": system_rows(f"s{i}", a, shuffled[i * N_ITEMS:(i + 1) * N_ITEMS])
               for i, a in enumerate(ACCURACIES)}
    result = validate_runs([load_run(s) for s in write_systems(tmp_path, systems)], n_resamples=500, seed=0)
    for name in ("spearman", "pearson"):
        ci = result["system_level"][name]
        assert ci["low"] < 0.0 < ci["high"], (name, ci)
    item = result["item_level"]["spearman"]
    assert item["low"] < 0.0 < item["high"]


def test_unjudged_items_count_for_accuracy_but_not_for_the_judge_score(tmp_path):
    rows = system_rows("s0", 0.5)
    rows[0] = JudgedRow(prediction=rows[0].prediction, status="unjudged", reason="api:timeout",
                        rubric=RUBRIC.name, judge_model="judge-a")
    write_judged(tmp_path / "s0" / "judged.jsonl", rows)
    system = validate_runs([load_run(str(tmp_path / "s0"))], n_resamples=10)["systems"][0]
    assert (system["label_items"], system["judged_label_items"]) == (N_ITEMS, N_ITEMS - 1)
    assert system["accuracy"] == 0.5
    assert system["judge_score"] == pytest.approx((29 * 100 + 30 * 20) / 59)


def test_repeated_and_second_judge_runs_are_compared_for_agreement(tmp_path):
    base = system_rows("s0", 0.5)
    flipped = [r.rating for r in base]
    flipped[:6] = [4] * 6  # six 5s become 4s
    specs = write_systems(tmp_path, {
        "a": base,
        "b": system_rows("s0", 0.5, sample_index=1),
        "c": system_rows("s0", 0.5, ratings=flipped, model="judge-b"),
    })
    result = validate_runs([load_run(s) for s in specs], n_resamples=10)
    assert len(result["systems"]) == 1 and "note" in result["system_level"]
    same, other = result["agreement"]
    assert same["kappa_quadratic"] == pytest.approx(1.0) and same["exact_agreement"] == 1.0
    assert other["exact_agreement"] == pytest.approx(1 - 6 / N_ITEMS)
    assert 0.9 < other["kappa_quadratic"] < 1.0 and "judge-b" in other["b"]


def test_main_validate_writes_reports_and_names_runs(tmp_path):
    systems = {f"dir{i}": system_rows(None, a) for i, a in enumerate(ACCURACIES[:3])}
    specs = write_systems(tmp_path, systems)
    specs[0] = f"baseline={specs[0]}"
    out = tmp_path / "report"
    assert main_validate([*specs, "--out", str(out), "--n-resamples", "100"]) == 0
    result = json.loads((out / "validation.json").read_text())
    assert [s["system"] for s in result["systems"]] == ["baseline", "dir1", "dir2"]
    assert "Judge score vs accuracy" in (out / "validation.md").read_text()
    assert (out / "systems.csv").read_text().splitlines()[0].startswith("system,judge,label_items")


def test_main_validate_reports_a_missing_run_in_one_line(tmp_path, capsys):
    assert main_validate([str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "nope" in capsys.readouterr().err
