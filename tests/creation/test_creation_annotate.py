"""`paralm data annotate` and its annotators: tiny local models, strict head loading, ensembles,
the model-free acoustic rule, and out-of-fold predictions for annotators fitted on the corpus."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

from paralm.creation.annotate import annotate, fit_and_predict, main
from paralm.creation.annotators import AnnotatorInput, build_annotator, register_annotator
from paralm.creation.annotators.ensemble import EnsembleAnnotator
from paralm.creation.annotators.folds import assign_folds
from paralm.creation.annotators.msp_dim import CheckpointMismatch, MspDimModel, load_msp_dim
from paralm.creation.stage import encode_audio
from paralm.data.index import ShardIndex
from paralm.data.reader import iter_samples
from paralm.data.schema import EMOTIONS, validate_sample
from paralm.data.shards import write_shards

SR = 16000


# --- fixtures ---------------------------------------------------------------------------------


def voice(f0: float, amp: float, rate: float, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A harmonic 'voice' at f0 Hz whose loudness pulses `rate` times a second (syllable-like)."""
    t = np.arange(int(SR * seconds)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 0.7 * t))) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = np.clip(np.sin(np.pi * rate * t), 0, None) ** 2
    noise = np.random.default_rng(seed).normal(0, 1e-4, len(t))
    return (amp * x * env / 2.6 + noise).astype(np.float32)


def tiny_w2v_config(**kw) -> Wav2Vec2Config:
    return Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                          conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=8,
                          num_conv_pos_embedding_groups=2, feat_extract_norm="layer", do_stable_layer_norm=True,
                          vocab_size=8, **kw)


def save_extractor(folder: Path) -> None:
    Wav2Vec2FeatureExtractor(sampling_rate=SR, do_normalize=True, return_attention_mask=True).save_pretrained(folder)


@pytest.fixture(scope="module")
def categorical_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cat")
    torch.manual_seed(0)
    labels = {0: "ang", 1: "Happiness", 2: "neu", 3: "other"}
    cfg = tiny_w2v_config(num_labels=4, id2label=labels, label2id={v: k for k, v in labels.items()})
    Wav2Vec2ForSequenceClassification(cfg).save_pretrained(folder)
    save_extractor(folder)
    return folder


@pytest.fixture(scope="module")
def msp_model(tmp_path_factory) -> Path:
    """An MSP-dim model whose head outputs exactly its bias: (0.1, 0.2, 0.3)."""
    folder = tmp_path_factory.mktemp("msp")
    torch.manual_seed(0)
    model = MspDimModel(tiny_w2v_config(num_labels=3))
    with torch.no_grad():
        model.classifier.out_proj.weight.zero_()
        model.classifier.out_proj.bias.copy_(torch.tensor([0.1, 0.2, 0.3]))
    model.save_pretrained(folder)
    save_extractor(folder)
    return folder


def make_set(root: Path, samples: list[tuple[dict, np.ndarray]]) -> Path:
    """Write (meta without key-derived defaults, audio) pairs as a shard set."""
    def rows():
        for meta, audio in samples:
            base = {"transcript": "some words here", "duration": len(audio) / SR, "corpus": "synth", "split": "train"}
            yield {**base, **meta}, encode_audio(audio, SR), "flac"

    write_shards(rows(), root)
    return root


def read_set(root: Path) -> dict[str, dict]:
    return {row.key: meta for row, meta, _ in iter_samples(ShardIndex.load(root))}


def tree_hash(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


def inputs(*audios: np.ndarray, metas: list[dict] | None = None) -> list[AnnotatorInput]:
    metas = metas or [{} for _ in audios]
    return [AnnotatorInput(f"k{i}", a, SR, m) for i, (a, m) in enumerate(zip(audios, metas, strict=True))]


# --- model annotators -------------------------------------------------------------------------
def test_hf_categorical_maps_model_labels_onto_emotions_and_keeps_unmapped(categorical_model):
    ann = build_annotator(f"cat=hf_categorical:model={categorical_model}")
    clips = [voice(120, 0.3, 3, 1.0), voice(220, 0.6, 5, 1.5)]
    preds = ann.annotate(inputs(*clips))
    model = Wav2Vec2ForSequenceClassification.from_pretrained(categorical_model).eval()
    values = Wav2Vec2FeatureExtractor.from_pretrained(categorical_model)(clips[0], sampling_rate=SR,
                                                                         return_tensors="pt")["input_values"]
    with torch.no_grad():
        expected = torch.softmax(model(values).logits, -1)[0].numpy()
    p = preds[0]
    assert set(p["probs"]) == {"angry", "happy", "neutral"} and set(p["other_probs"]) == {"other"}
    got = [p["probs"]["angry"], p["probs"]["happy"], p["probs"]["neutral"], p["other_probs"]["other"]]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    winner = ["angry", "happy", "neutral", None][int(np.argmax(expected))]
    assert p.get("emotion") == winner and p["version"].startswith(categorical_model.name + "@")


@pytest.mark.parametrize("norm", ["layer", "group"])
def test_padding_in_a_batch_does_not_change_a_clips_prediction(tmp_path, norm):
    labels = {0: "neutral", 1: "happy", 2: "sad"}
    cfg = tiny_w2v_config(num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()})
    if norm == "group":  # trained without attention masks: the extractor returns none
        cfg = Wav2Vec2Config(**{**cfg.to_dict(), "feat_extract_norm": "group", "do_stable_layer_norm": False})
    torch.manual_seed(1)
    Wav2Vec2ForSequenceClassification(cfg).save_pretrained(tmp_path)
    Wav2Vec2FeatureExtractor(sampling_rate=SR, return_attention_mask=norm == "layer").save_pretrained(tmp_path)
    ann = build_annotator(f"c=hf_categorical:model={tmp_path}")
    clips = [voice(150, 0.3, 4, 0.5), voice(220, 0.5, 5, 1.7)]
    together = ann.annotate(inputs(*clips))
    for clip, pred in zip(clips, together, strict=True):
        assert len(pred["probs"]) == 3
        assert ann.annotate(inputs(clip))[0]["probs"] == pytest.approx(pred["probs"], abs=1e-5)


def test_gender_annotator_maps_female_male_labels(tmp_path):
    labels = {0: "F", 1: "Male"}
    Wav2Vec2ForSequenceClassification(tiny_w2v_config(num_labels=2, id2label=labels,
                                                      label2id={"F": 0, "Male": 1})).save_pretrained(tmp_path)
    save_extractor(tmp_path)
    pred = build_annotator(f"g=gender:model={tmp_path}").annotate(inputs(voice(200, 0.3, 4, 1.0)))[0]
    assert set(pred["gender_probs"]) == {"female", "male"}
    assert pred["gender"] == max(pred["gender_probs"], key=pred["gender_probs"].get)


def test_msp_dim_keeps_output_order_arousal_dominance_valence(msp_model):
    ann = build_annotator(f"dim=msp_dim:model={msp_model}")
    preds = ann.annotate(inputs(voice(150, 0.3, 4, 1.0), voice(250, 0.5, 6, 0.6)))
    for p in preds:
        assert (p["arousal"], p["dominance"], p["valence"]) == pytest.approx((0.1, 0.2, 0.3), abs=1e-6)


def test_msp_dim_refuses_checkpoint_missing_head_keys(msp_model, tmp_path):
    for f in msp_model.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    weights = load_file(tmp_path / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith("classifier.")}, tmp_path / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(CheckpointMismatch, match="classifier.out_proj.weight") as err:
        load_msp_dim(tmp_path)
    assert "classifier.dense.bias" in str(err.value)


def test_msp_dim_loads_legacy_weight_norm_names_from_bin(msp_model, tmp_path):
    for f in msp_model.iterdir():
        if f.suffix != ".safetensors":
            (tmp_path / f.name).write_bytes(f.read_bytes())
    weights = load_file(msp_model / "model.safetensors")
    legacy = {k.replace("parametrizations.weight.original0", "weight_g")
               .replace("parametrizations.weight.original1", "weight_v"): v for k, v in weights.items()}
    assert any(k.endswith("weight_g") for k in legacy)
    torch.save(legacy, tmp_path / "pytorch_model.bin")
    model = load_msp_dim(tmp_path)
    assert torch.equal(model.classifier.out_proj.bias, torch.tensor([0.1, 0.2, 0.3]))


# --- external, ensemble, acoustic -------------------------------------------------------------
def fake_external(audio: list[np.ndarray], sample_rate: int, metas: list[dict]) -> list[dict]:
    """Stands in for a non-transformers model: louder clip -> angrier."""
    out = []
    for a in audio:
        loud = float(min(1.0, np.abs(a).max()))
        out.append({"emotion": "angry" if loud > 0.5 else "neutral",
                    "probs": {"angry": loud, "neutral": 1 - loud}, "sr_seen": sample_rate})
    return out


def test_external_annotator_wraps_a_callable_by_import_path():
    ann = build_annotator(f"ext=external:fn={__name__}:fake_external")
    preds = ann.annotate(inputs(voice(150, 0.9, 4, 0.5), voice(150, 0.1, 4, 0.5)))
    assert [p["emotion"] for p in preds] == ["angry", "neutral"] and preds[0]["sr_seen"] == SR
    assert preds[0]["version"].startswith(f"{__name__}:fake_external@")
    with pytest.raises(ValueError, match="package.module:function"):
        build_annotator("ext=external:fn=no_colon_here")


def test_ensemble_averages_member_probabilities():
    ens = EnsembleAnnotator("ens", members=["a", "b"])
    preds = {"a": {"probs": {"happy": 0.6, "sad": 0.4}, "arousal": 0.8},
             "b": {"probs": {"happy": 0.1, "angry": 0.9}, "arousal": 0.4}}
    out = ens.combine(preds)
    assert out["probs"] == pytest.approx({"happy": 0.35, "sad": 0.2, "angry": 0.45})
    assert out["emotion"] == "angry" and out["arousal"] == pytest.approx(0.6) and out["members"] == ["a", "b"]
    weighted = EnsembleAnnotator("ens", members=["a", "b"], weights=["3", "1"]).combine(preds)
    assert weighted["probs"]["happy"] == pytest.approx(0.475) and weighted["emotion"] == "happy"
    assert ens.combine({"a": preds["a"]})["members"] == ["a"] and ens.combine({}) == {}


def test_acoustic_arousal_higher_for_louder_faster_higher_voice():
    ann = build_annotator("acoustic")
    calm, excited = ann.annotate(inputs(voice(110, 0.05, 2.5), voice(260, 0.7, 7)))
    assert excited["arousal"] > calm["arousal"] + 0.3
    assert excited["category"] == "high_arousal" and calm["category"] == "low_arousal"
    assert excited["acoustic"]["pitch_hz"] == pytest.approx(260, rel=0.05)
    assert excited["acoustic"]["rate"] > calm["acoustic"]["rate"]
    for one in [dict(f0=260), dict(amp=0.7), dict(rate=7)]:  # each cue alone raises arousal
        base = dict(f0=150, amp=0.2, rate=4)
        low, high = ann.annotate(inputs(voice(**base), voice(**{**base, **one})))
        assert high["arousal"] > low["arousal"], one


def test_acoustic_gives_no_arousal_for_silence():
    pred = build_annotator("acoustic").annotate(inputs(np.zeros(SR, np.float32)))[0]
    assert "arousal" not in pred and pred["version"]


# --- specs ------------------------------------------------------------------------------------
def test_annotator_spec_errors_name_valid_choices():
    with pytest.raises(ValueError, match="registered: .*acoustic"):
        build_annotator("x=nope")
    with pytest.raises(ValueError, match="valid: .*energy_mean"):
        build_annotator("acoustic:bogus=1")
    with pytest.raises(ValueError, match="not a valid float"):
        build_annotator("acoustic:energy_mean=loud")


# --- fitting and out-of-fold ------------------------------------------------------------------
@register_annotator("test_memorizer")
class Memorizer:
    """A 'model' that remembers which sample indices it was fitted on and reports whether it saw one."""

    needs_audio = True

    def __init__(self, id: str, *, device: str = "cpu") -> None:
        self.id, self.version = id, "mem"

    def describe(self) -> dict:
        return {"kind": self.kind}

    def annotate(self, batch):
        raise AssertionError("fitted annotators are never called directly")

    def features(self, batch: list[AnnotatorInput]) -> np.ndarray:
        return np.array([[int(b.key.split("-")[1])] for b in batch], dtype=float)

    def fit(self, x: np.ndarray, gold: list[dict]) -> set[int]:
        return {int(v) for v in x[:, 0]}

    def predict(self, model: set[int], x: np.ndarray) -> list[dict]:
        return [{"seen": int(v) in model, "n_train": len(model)} for v in x[:, 0]]


def corpus(n_train: int = 12, n_test: int = 4, speakers: int = 6) -> list[tuple[dict, np.ndarray]]:
    rng = np.random.default_rng(0)
    out = []
    styles = {"angry": (240, 0.6, 6), "sad": (110, 0.05, 2), "neutral": (160, 0.2, 4)}
    for i in range(n_train + n_test):
        emo = list(styles)[i % 3]
        f0, amp, rate = styles[emo]
        audio = voice(f0 * rng.uniform(0.9, 1.1), amp * rng.uniform(0.8, 1.2), rate, 1.0, seed=i)
        meta = {"key": f"s-{i}", "split": "train" if i < n_train else "test", "speaker": f"spk{i % speakers}",
                "labels": {"gold": {"emotion": emo, "arousal": {"angry": 0.9, "sad": 0.2, "neutral": 0.5}[emo]}}}
        out.append((meta, audio))
    return out


def test_out_of_fold_predictions_never_come_from_a_model_that_saw_the_sample(tmp_path):
    src = make_set(tmp_path / "src", corpus())
    from paralm.creation.annotate import FitPlan

    annotate(src, tmp_path / "out", ["mem=test_memorizer"], plan=FitPlan(folds=3), quiet=True)
    metas = read_set(tmp_path / "out")
    train = {k: m for k, m in metas.items() if m["split"] == "train"}
    folds_of_speaker: dict[str, set[int]] = {}
    for m in train.values():
        pred = m["labels"]["pred"]
        assert "mem" not in pred, "a training sample must not get an in-sample prediction"
        assert pred["mem@oof"]["seen"] is False
        assert pred["mem@oof"]["n_train"] < len(train)
        folds_of_speaker.setdefault(m["speaker"], set()).add(pred["mem@oof"]["fold"])
    assert all(len(f) == 1 for f in folds_of_speaker.values()), "a speaker's samples span several folds"
    assert {f for fs in folds_of_speaker.values() for f in fs} == {0, 1, 2}
    for m in metas.values():
        if m["split"] == "test":
            assert m["labels"]["pred"]["mem"] == {"seen": False, "n_train": len(train)}
    record = metas["s-0"]["provenance"]["annotate"]["mem"]
    assert record["folds"] == 3 and sum(record["fold_sizes"]) == len(train)


def test_fitted_annotator_without_folds_leaves_training_split_unlabelled(tmp_path):
    src = make_set(tmp_path / "src", corpus(6, 2))
    report = annotate(src, tmp_path / "out", ["mem=test_memorizer"], quiet=True)
    metas = read_set(tmp_path / "out")
    assert all("pred" not in m.get("labels", {}) or "mem" not in m["labels"]["pred"]
               for m in metas.values() if m["split"] == "train")
    assert report.counts["unlabelled:mem"] == 6 and report.counts["labelled:mem"] == 2


def test_acoustic_fit_learns_emotions_out_of_fold(tmp_path):
    src = make_set(tmp_path / "src", corpus(18, 6))
    code = main([str(src), "--out", str(tmp_path / "out"), "--annotator", "af=acoustic_fit", "--folds", "3"])
    assert code == 0
    metas = read_set(tmp_path / "out")
    right = 0
    for m in metas.values():
        validate_sample(m)
        label = "af@oof" if m["split"] == "train" else "af"
        pred = m["labels"]["pred"][label]
        assert set(pred["probs"]) == {"angry", "sad", "neutral"} and pred["emotion"] in EMOTIONS
        assert 0.0 <= pred["arousal"] <= 1.0 and sum(pred["probs"].values()) == pytest.approx(1, abs=1e-4)
        right += pred["emotion"] == m["labels"]["gold"]["emotion"]
    assert right >= 0.8 * len(metas)  # the three styles are acoustically far apart


def test_fold_assignment_is_grouped_balanced_and_seeded():
    groups = [f"g{i % 7}" for i in range(40)]
    folds = assign_folds(groups, 4, seed=1)
    assert folds == assign_folds(groups, 4, seed=1)
    for g in set(groups):
        assert len({f for f, gg in zip(folds, groups, strict=True) if gg == g}) == 1
    sizes = [folds.count(f) for f in range(4)]
    assert max(sizes) - min(sizes) <= 6
    with pytest.raises(ValueError, match="at least 4 speaker groups"):
        assign_folds(["a", "b", "a"], 4)


def test_fit_needs_a_training_split():
    from paralm.creation.annotate import FitPlan

    ann = build_annotator("mem=test_memorizer")
    with pytest.raises(ValueError, match="no samples"):
        fit_and_predict(ann, np.zeros((2, 1)), [("a", "test", "g", {}), ("b", "test", "g", {})], FitPlan())


# --- the stage as a whole ---------------------------------------------------------------------
def test_annotate_leaves_input_untouched_records_provenance_and_counts(tmp_path, categorical_model, msp_model):
    src = make_set(tmp_path / "src", corpus(4, 2))
    before = tree_hash(src)
    specs = [f"c1=hf_categorical:model={categorical_model}", f"c2=external:fn={__name__}:fake_external",
             "ens=ensemble:members=c1+c2", f"dim=msp_dim:model={msp_model}", "ac=acoustic"]
    code = main([str(src), "--out", str(tmp_path / "out"), "--batch-size", "4", "--device", "cpu",
                 *[a for s in specs for a in ("--annotator", s)]])
    assert code == 0 and tree_hash(src) == before
    metas = read_set(tmp_path / "out")
    assert len(metas) == 6
    for m in metas.values():
        validate_sample(m)
        pred = m["labels"]["pred"]
        assert set(pred) == {"c1", "c2", "ens", "dim", "ac"}
        mean = {e: (pred["c1"]["probs"].get(e, 0) + pred["c2"]["probs"].get(e, 0)) / 2
                for e in set(pred["c1"]["probs"]) | set(pred["c2"]["probs"])}
        assert pred["ens"]["probs"] == pytest.approx(mean, abs=1e-5)
        prov = m["provenance"]["annotate"]
        assert prov["dim"]["output_order"] == ["arousal", "dominance", "valence"]
        assert prov["c1"]["version"] == pred["c1"]["version"] and prov["c1"]["device"] == "cpu"
    report = json.loads((tmp_path / "out" / "stage_annotate.json").read_text())
    assert report["counts"]["read"] == 6 and report["counts"]["written"] == 6
    assert report["counts"]["labelled:ens"] == 6


def test_annotate_refuses_to_write_into_its_input(tmp_path):
    src = make_set(tmp_path / "src", corpus(2, 0))
    with pytest.raises(ValueError, match="outside the input"):
        annotate(src, src / "out", ["acoustic"], quiet=True)
