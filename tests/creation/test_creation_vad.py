"""`paralm data vad`: silero-vad segments from the packaged weights, optional split into windows."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from paralm.creation.stage import encode_audio
from paralm.creation.vad import VadConfig, load_silero, main, vad
from paralm.data.index import ShardIndex
from paralm.data.reader import iter_samples
from paralm.data.schema import validate_sample
from paralm.data.shards import write_shards

pytest.importorskip("silero_vad")


def voice(seconds: float, sr: int, f0: float = 180.0) -> np.ndarray:
    """A harmonic tone with 4-Hz syllable-like loudness pulses; silero-vad hears it as speech."""
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
    return (0.25 * x * (1 + np.sin(2 * np.pi * 4 * t)) / 2).astype(np.float32)


def clip(sr: int) -> np.ndarray:
    """silence 1 s | voice 1 s | silence 1 s | voice 1.5 s | silence 0.5 s -> speech at 1-2 s and 3-4.5 s."""
    z = lambda s: np.zeros(int(s * sr), np.float32)  # noqa: E731
    return np.concatenate([z(1), voice(1, sr), z(1), voice(1.5, sr), z(0.5)])


def make_set(root: Path, sr: int = 16000) -> Path:
    audio = clip(sr)
    metas = [
        {"key": "a", "transcript": "hello there general", "duration": len(audio) / sr, "corpus": "c",
         "split": "train", "speaker": "s1",
         "words": [{"w": "hello", "start": 1.1, "end": 1.5}, {"w": "there", "start": 1.5, "end": 1.9},
                   {"w": "general", "start": 3.2, "end": 4.0}],
         "labels": {"gold": {"emotion": "happy"}, "pred": {"x": {"emotion": "sad"}}},
         "qa": [{"question": "q?", "answer": "a", "type": "C", "origin": "human"}]},
        {"key": "quiet", "transcript": "", "duration": 1.0, "corpus": "c", "split": "train"},
    ]
    audios = [encode_audio(audio, sr), encode_audio(np.zeros(sr, np.float32), sr)]
    write_shards(((m, a, "flac") for m, a in zip(metas, audios, strict=True)), root)
    return root


def read_set(root: Path) -> dict[str, tuple[dict, bytes]]:
    return {row.key: (meta, data) for row, meta, data in iter_samples(ShardIndex.load(root))}


def tree_hash(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))}


def test_loading_silero_keeps_torch_thread_count():
    torch.set_num_threads(2)
    model, version = load_silero()
    assert torch.get_num_threads() == 2 and version[0].isdigit() and model is not None


def test_vad_writes_speech_segments_and_leaves_input_untouched(tmp_path):
    src = make_set(tmp_path / "src")
    before = tree_hash(src)
    assert main([str(src), "--out", str(tmp_path / "out")]) == 0
    assert tree_hash(src) == before
    out = read_set(tmp_path / "out")
    speech = out["a"][0]["speech"]
    assert len(speech) == 2
    assert speech[0]["start"] == pytest.approx(1.0, abs=0.15) and speech[0]["end"] == pytest.approx(2.0, abs=0.15)
    assert speech[1]["start"] == pytest.approx(3.0, abs=0.15) and speech[1]["end"] == pytest.approx(4.5, abs=0.15)
    assert out["quiet"][0]["speech"] == []
    assert out["a"][1] == read_set(src)["a"][1], "audio is copied byte for byte when not splitting"
    prov = out["a"][0]["provenance"]["vad"]
    assert prov["tool"] == "silero-vad" and prov["params"]["threshold"] == 0.5
    report = json.loads((tmp_path / "out" / "stage_vad.json").read_text())
    assert report["counts"]["read"] == 2 and report["counts"]["with_speech"] == 1
    assert report["counts"]["no_speech"] == 1


def test_vad_split_cuts_windows_at_source_rate_with_shifted_words(tmp_path):
    src = make_set(tmp_path / "src", sr=22050)
    report = vad(src, tmp_path / "out", VadConfig(split=True), quiet=True)
    out = read_set(tmp_path / "out")
    assert sorted(out) == ["a_000", "a_001"]
    for meta, data in out.values():
        validate_sample(meta)
        audio, rate = sf.read(io.BytesIO(data))
        w = meta["window"]
        assert rate == 22050 and w["parent"] == "a"
        assert len(audio) / rate == pytest.approx(w["end"] - w["start"], abs=1e-3)
        assert meta["duration"] == pytest.approx(len(audio) / rate, abs=1e-4)
        assert "qa" not in meta and "pred" not in meta["labels"] and meta["labels"]["gold"]["emotion"] == "happy"
        assert all(0 <= x["start"] <= x["end"] <= meta["duration"] + 1e-6 for x in meta.get("words", []))
    assert out["a_000"][0]["transcript"] == "hello there"
    assert out["a_001"][0]["transcript"] == "general"
    first = out["a_000"][0]["words"][0]
    assert first["start"] == pytest.approx(1.1 - out["a_000"][0]["window"]["start"], abs=1e-3)
    assert report.counts["windows"] == 2 and report.counts["qa_dropped_on_split"] == 1
    assert report.counts["written"] == 2 and report.counts["read"] == 2


def test_vad_split_drops_windows_shorter_than_minimum(tmp_path):
    src = make_set(tmp_path / "src")
    report = vad(src, tmp_path / "out", VadConfig(split=True, min_window_s=1.3), quiet=True)
    assert sorted(read_set(tmp_path / "out")) == ["a_000"]
    assert read_set(tmp_path / "out")["a_000"][0]["window"]["start"] == pytest.approx(3.0, abs=0.15)
    assert report.counts["windows_too_short"] == 1
