"""`paralm data condense`: windows, per-window labels, consistency / length / occurrence filters, and the command."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from paralm.creation.condense import condense
from paralm.creation.condense import main as condense_main
from paralm.creation.condense_core import CondenseConfig, clip_windows, condense_clips, tile_segment
from paralm.data.index import ShardIndex
from paralm.data.reader import iter_samples
from paralm.data.shards import write_shards

SR = 16000


def words_every_half_second(duration: float) -> list[dict]:
    """Word k spans [0.5k, 0.5k + 0.4]: its midpoint is 0.5k + 0.2."""
    return [{"w": f"w{k}", "start": round(0.5 * k, 3), "end": round(0.5 * k + 0.4, 3)} for k in range(int(duration * 2))]


def clip(key: str, duration: float, pred: dict | None, **extra) -> dict:
    meta = {"key": key, "transcript": f"clip {key}", "duration": duration, "corpus": "toy", "split": "train"}
    if pred is not None:
        meta["labels"] = {"pred": {"ann": pred}}
    meta.update(extra)
    return meta


def hand_clips() -> list[dict]:
    """Seven clips whose windows' fates are worked out by hand in `test_filters_keep_exactly_the_hand_computed_windows`."""
    return [
        # A: 7 s with words; centres [0,2] [2,4] [4,6] [6,7]; a stored window prediction covers [2,4].
        clip("A", 7.0, {"emotion": "happy", "valence": 0.7}, words=words_every_half_second(7.0),
             windows=[{"start": 2.0, "end": 4.0, "pred": {"ann": {"emotion": "sad", "valence": 0.45}}}]),
        clip("B", 3.0, {"emotion": "angry", "valence": 0.3}, speech=[{"start": 0.5, "end": 2.5}]),
        clip("C", 2.0, {"emotion": "neutral", "valence": 0.9}),
        clip("D", 2.0, {"emotion": "angry", "valence": 0.35}),
        clip("E", 2.0, None),
        clip("F", 2.0, {"emotion": "happy", "valence": 0.45}),
        clip("G", 2.0, {"emotion": "sad"}),
    ]


HAND_CFG = CondenseConfig(annotator="ann", min_occurrence=2, min_centre=1.5)


def test_centres_tile_segments_and_cuts_add_context_clamped_to_the_clip():
    assert tile_segment(0.0, 7.0, 2.0) == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0), (6.0, 7.0)]
    windows = clip_windows(hand_clips()[0], HAND_CFG)
    assert [w.cut for w in windows] == [(0.0, 3.0), (1.0, 5.0), (3.0, 7.0), (5.0, 7.0)]
    speech_only = clip_windows(hand_clips()[1], HAND_CFG)
    assert [(w.centre, w.cut) for w in speech_only] == [((0.5, 2.5), (0.0, 3.0))]


def test_filters_keep_exactly_the_hand_computed_windows():
    res = condense_clips(hand_clips(), HAND_CFG)
    assert [w.key for w in res.kept] == ["A_w000", "A_w002", "B_w000", "D_w000"]
    assert {w.key: r for w, r in res.dropped} == {
        "E_w000": "no_label",
        "A_w001": "inconsistent",      # the stored window says sad at valence 0.45 > 0.4
        "F_w000": "inconsistent",      # happy needs valence >= 0.5
        "G_w000": "missing_valence",
        "A_w003": "too_short",         # centre [6, 7] is 1 s < min_centre 1.5 s
        "C_w000": "rare_label",        # the only neutral window left, min_occurrence 2
    }
    assert res.stage_counts == {"windows": 10, "label": 9, "consistency": 6, "length": 5, "occurrence": 4}
    assert res.label_counts() == {"angry": 2, "happy": 2}


def test_window_prediction_wins_over_clip_prediction_only_where_stored():
    windows = clip_windows(hand_clips()[0], HAND_CFG)
    assert [(w.emotion, w.label_scope) for w in windows] == [
        ("happy", "clip"), ("sad", "window"), ("happy", "clip"), ("happy", "clip")]


def test_thresholds_and_neutral_rule_are_configurable():
    loose = CondenseConfig(annotator="ann", valence_pos=0.4, valence_neg=0.4, min_centre=1.5)
    assert "F_w000" in {w.key for w in condense_clips(hand_clips(), loose).kept}   # 0.45 >= 0.4 now
    strict_neutral = CondenseConfig(annotator="ann", neutral_rule="between", min_centre=1.5)
    dropped = {w.key: r for w, r in condense_clips(hand_clips(), strict_neutral).dropped}
    assert dropped["C_w000"] == "inconsistent"  # neutral at valence 0.9 is outside (0.4, 0.5)
    with pytest.raises(ValueError, match="neutral_rule"):
        CondenseConfig(neutral_rule="maybe")


def test_words_are_cut_to_the_window_and_counted_for_min_words():
    a = clip_windows(hand_clips()[0], HAND_CFG)
    assert a[0].transcript == "w0 w1 w2 w3 w4 w5"       # midpoints 0.2 .. 2.7 lie in the cut [0, 3)
    assert a[2].words[0] == {"w": "w6", "start": 0.0, "end": 0.4}   # shifted to the cut start (3 s)
    assert a[0].centre_words == 4
    res = condense_clips(hand_clips(), CondenseConfig(annotator="ann", min_words=5, min_centre=1.5))
    assert {w.key: r for w, r in res.dropped}["A_w000"] == "too_few_words"


def test_cut_without_word_timings_is_dropped_instead_of_reusing_the_clip_transcript():
    long_clip = clip("L", 5.0, {"emotion": "happy", "valence": 0.9})
    res = condense_clips([long_clip], CondenseConfig(annotator="ann"))
    assert {r for _, r in res.dropped} == {"needs_word_timings"}


def _flac(seconds: float, seed: int) -> bytes:
    wav = np.random.default_rng(seed).uniform(-0.3, 0.3, int(seconds * SR)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, wav, SR, format="FLAC")
    return buf.getvalue()


def _hash_dir(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


def test_condense_command_writes_window_samples_and_leaves_input_untouched(tmp_path, capsys):
    src, out = tmp_path / "src", tmp_path / "out"
    write_shards([(m, _flac(m["duration"], i), "flac") for i, m in enumerate(hand_clips())], src)
    before = _hash_dir(src)
    assert condense_main([str(src), "--out", str(out), "--annotator", "ann", "--min-occurrence", "2",
                          "--min-centre", "1.5"]) == 0
    assert _hash_dir(src) == before
    rows = {row.key: (row, meta, audio) for row, meta, audio in iter_samples(ShardIndex.load(out))}
    assert sorted(rows) == ["A_w000", "A_w002", "B_w000", "D_w000"]
    _, meta, audio = rows["A_w002"]
    assert sf.info(io.BytesIO(audio)).frames == 4 * SR          # cut [3, 7]
    assert meta["window"] == {"parent": "A", "index": 2, "centre": [4.0, 6.0], "cut": [3.0, 7.0]}
    assert meta["labels"]["pred"]["ann"]["emotion"] == "happy" and "qa" not in meta
    assert meta["provenance"]["condense"]["annotator"] == "ann"
    assert rows["B_w000"][1]["transcript"] == "clip B"          # the cut is the whole clip
    report = json.loads((out / "condense_report.json").read_text())
    assert report["stages"]["occurrence"] == 4 and report["dropped"]["inconsistent"] == 2
    printed = capsys.readouterr().out
    assert "consistency" in printed and "rare_label" in printed


def test_condense_api_gives_the_same_windows_as_the_pure_core(tmp_path):
    src = tmp_path / "src"
    write_shards([(m, _flac(m["duration"], i), "flac") for i, m in enumerate(hand_clips())], src)
    rep = condense(src, tmp_path / "out", HAND_CFG, quiet=True)
    core = condense_clips(hand_clips(), HAND_CFG)
    assert rep["stages"] == core.stage_counts
    assert [r.key for r in ShardIndex.load(tmp_path / "out").samples] == [w.key for w in core.kept]
