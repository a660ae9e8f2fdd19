"""`paralm data annotate --windows`: each window that condense will cut gets its own prediction."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_creation_annotate import SR, make_set, read_set, save_extractor, tiny_w2v_config, voice

from paralm.creation.annotate import FitPlan, WindowPlan, annotate, main
from paralm.creation.annotators.msp_dim import MspDimModel
from paralm.creation.condense import condense
from paralm.creation.condense_core import CondenseConfig

LOUD, QUIET = voice(150, 0.9, 4, 3.0), voice(150, 0.1, 4, 3.0, seed=1)


def words(seconds: float) -> list[dict]:
    """A word every half second (condense cuts transcripts by word timings)."""
    return [{"w": f"w{i}", "start": i / 2, "end": i / 2 + 0.4} for i in range(int(seconds * 2))]


def loud_then_quiet(tmp_path):
    """One 6-s clip, loud for 3 s then quiet; one 3-s quiet clip with a VAD segment of 1 s."""
    clips = [({"key": "lq", "words": words(6)}, np.concatenate([LOUD, QUIET])),
             ({"key": "qq", "speech": [{"start": 0.5, "end": 1.5}], "words": words(3)}, QUIET)]
    return make_set(tmp_path / "src", clips)


SPECS = ["a=external:fn=test_creation_annotate:fake_external",
         "b=external:fn=test_creation_annotate:fake_external", "ens=ensemble:members=a+b"]


def test_each_window_is_labelled_from_its_own_audio_and_ensembles_combine_window_predictions(tmp_path):
    src = loud_then_quiet(tmp_path)
    annotate(src, tmp_path / "out", SPECS, windows=WindowPlan(window=2.0, context=0.5), quiet=True)
    metas = read_set(tmp_path / "out")
    lq, qq = metas["lq"], metas["qq"]
    assert [(w["start"], w["end"], w["cut"]) for w in lq["windows"]] == [
        (0.0, 2.0, [0.0, 2.5]), (2.0, 4.0, [1.5, 4.5]), (4.0, 6.0, [3.5, 6.0])]
    assert [w["pred"]["a"]["emotion"] for w in lq["windows"]] == ["angry", "angry", "neutral"]
    assert lq["labels"]["pred"]["a"]["emotion"] == "angry"  # the clip as a whole is loud
    for w in lq["windows"]:
        assert w["pred"]["ens"]["probs"] == pytest.approx(w["pred"]["a"]["probs"])  # two identical members
    assert [(w["start"], w["end"], w["cut"]) for w in qq["windows"]] == [(0.5, 1.5, [0.0, 2.0])]
    report = json.loads((tmp_path / "out" / "stage_annotate.json").read_text())
    assert report["counts"]["windows"] == 4 and report["counts"]["window_labelled:ens"] == 4
    assert lq["provenance"]["annotate"]["@windows"]["annotators"] == ["a", "b", "ens"]


def test_condense_keeps_a_window_whose_own_label_passes_where_the_clip_label_would_fail(tmp_path):
    src = loud_then_quiet(tmp_path)
    annotate(src, tmp_path / "plain", SPECS, quiet=True)
    annotate(src, tmp_path / "win", SPECS, windows=WindowPlan(window=2.0, context=0.5), quiet=True)
    cfg = CondenseConfig(window=2.0, context=0.5, annotator="ens", min_centre=0.5)
    # angry needs a valence <= 0.4 and the fake model gives none: angry windows fail, neutral ones pass
    condense(tmp_path / "plain", tmp_path / "c_plain", cfg, quiet=True)
    condense(tmp_path / "win", tmp_path / "c_win", cfg, quiet=True)
    plain, win = read_set(tmp_path / "c_plain"), read_set(tmp_path / "c_win")
    assert sorted(plain) == ["qq_w000"]  # the loud clip's label (angry) sinks all three of its windows
    assert sorted(win) == ["lq_w002", "qq_w000"]
    kept = win["lq_w002"]["labels"]["pred"]["ens"]
    assert kept["emotion"] == "neutral" and kept["scope"] == "window"


def test_fitted_annotators_stay_clip_level_and_are_counted(tmp_path):
    clips = [({"key": f"s-{i}", "split": "train" if i < 4 else "test", "speaker": f"p{i % 2}"}, QUIET[: SR * 2])
             for i in range(6)]
    src = make_set(tmp_path / "src", clips)
    annotate(src, tmp_path / "out", ["mem=test_memorizer", "a=external:fn=test_creation_annotate:fake_external"],
             plan=FitPlan(folds=2), windows=WindowPlan(window=1.0, context=0.0), quiet=True)
    metas = read_set(tmp_path / "out")
    assert all(set(w["pred"]) == {"a"} for m in metas.values() for w in m["windows"])
    report = json.loads((tmp_path / "out" / "stage_annotate.json").read_text())
    assert report["counts"]["windows_not_labelled_fitted:mem"] == 6 and report["counts"]["windows"] == 12


def test_cli_flags_reach_the_window_plan(tmp_path):
    src = loud_then_quiet(tmp_path)
    code = main([str(src), "--out", str(tmp_path / "out"), "--annotator", SPECS[0], "--windows",
                 "--window", "3", "--context", "0"])
    assert code == 0
    assert [w["cut"] for w in read_set(tmp_path / "out")["lq"]["windows"]] == [[0.0, 3.0], [3.0, 6.0]]
    # a second pass with the default geometry keeps no stale 3-s windows, and says so
    annotate(tmp_path / "out", tmp_path / "again", ["b=external:fn=test_creation_annotate:fake_external"],
             windows=WindowPlan(), quiet=True)
    again = read_set(tmp_path / "again")["lq"]["windows"]
    assert [(w["start"], w["end"]) for w in again] == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]
    assert all(set(w["pred"]) == {"b"} for w in again)
    report = json.loads((tmp_path / "again" / "stage_annotate.json").read_text())
    assert report["counts"]["earlier_windows_dropped:other_geometry"] == 2  # lq's; qq's one centre is the same
    with pytest.raises(ValueError, match="--window must be > 0"):
        WindowPlan(window=0)


@pytest.fixture(scope="module")
def low_valence_model(tmp_path_factory):
    """A tiny MSP-dim regressor whose head outputs its bias: low valence whatever it hears."""
    folder = tmp_path_factory.mktemp("dim")
    torch.manual_seed(0)
    model = MspDimModel(tiny_w2v_config(num_labels=3))
    with torch.no_grad():
        model.classifier.out_proj.weight.zero_()
        model.classifier.out_proj.bias.copy_(torch.tensor([0.6, 0.5, 0.2]))  # arousal, dominance, valence
    model.save_pretrained(folder)
    save_extractor(folder)
    return folder


def test_condense_takes_valence_from_a_dimensional_annotator_window_by_window(tmp_path, low_valence_model):
    src = loud_then_quiet(tmp_path)
    specs = [SPECS[0], f"dim=msp_dim:model={low_valence_model}"]
    annotate(src, tmp_path / "win", specs, windows=WindowPlan(window=2.0, context=0.5), quiet=True)
    dims = read_set(tmp_path / "win")["lq"]["windows"][0]["pred"]["dim"]
    cfg = CondenseConfig(window=2.0, context=0.5, annotator="a", min_centre=0.5)
    alone = condense(tmp_path / "win", tmp_path / "c_alone", cfg, quiet=True)
    paired = condense(tmp_path / "win", tmp_path / "c_dim", replace(cfg, dimensions="dim"), quiet=True)
    assert alone["dropped"] == {"missing_valence": 2}  # the angry windows: "a" gives no valence
    assert paired["dropped"] == {} and dims["valence"] <= 0.4  # the tiny regressor says low valence
    kept = read_set(tmp_path / "c_dim")["lq_w000"]["labels"]["pred"]["a"]
    assert kept["emotion"] == "angry" and kept["valence"] == dims["valence"]
    assert kept["dimensions_from"] == "dim" and kept["dimensions_scope"] == "window"
