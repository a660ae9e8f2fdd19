"""Whisper-compatible log-mel features computed on a clip's real length.

Why here and not in the model: features are computed in dataloader workers (cheap, parallel) and the
collate needs to know their length, while the data layer must never import the model. Both import this.

Shapes: waveform (n,) float32 at `sample_rate` -> log-mel (n_mels, n // hop_length).
Matches transformers' WhisperFeatureExtractor on the same (unpadded) audio, except that the
dynamic-range floor (max - 8) is taken over the clip itself instead of the 30-s padded window.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch


@dataclass(frozen=True)
class FeatureSpec:
    """What the encoder consumes.

    Args:
        kind: "log_mel" (Whisper-style) or "waveform" (wav2vec2 / HuBERT / WavLM take raw samples).
        sample_rate: audio sample rate in Hz; the reader resamples to it.
        n_mels: mel bins (80 for Whisper up to v2, 128 for large-v3).
        n_fft: STFT window in samples.
        hop_length: STFT hop in samples (one feature frame per hop).
        normalize_waveform: zero-mean unit-variance per clip for waveform encoders.
    """

    kind: str = "log_mel"
    sample_rate: int = 16000
    n_mels: int = 80
    n_fft: int = 400
    hop_length: int = 160
    normalize_waveform: bool = True

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def num_feature_frames(spec: FeatureSpec, n_samples: int) -> int:
    """Feature frames a clip of `n_samples` becomes (log-mel: n // hop; waveform: n)."""
    if spec.kind == "waveform":
        return int(n_samples)
    return int(n_samples) // spec.hop_length


@lru_cache(maxsize=8)
def _mel_filters(n_mels: int, n_fft: int, sample_rate: int) -> torch.Tensor:
    from transformers.audio_utils import mel_filter_bank

    fb = mel_filter_bank(
        num_frequency_bins=1 + n_fft // 2,
        num_mel_filters=n_mels,
        min_frequency=0.0,
        max_frequency=sample_rate / 2,
        sampling_rate=sample_rate,
        norm="slaney",
        mel_scale="slaney",
    )
    return torch.from_numpy(np.asarray(fb, dtype=np.float32)).T.contiguous()  # (n_mels, n_freq)


@lru_cache(maxsize=8)
def _window(n_fft: int) -> torch.Tensor:
    return torch.hann_window(n_fft)


def log_mel(waveform: np.ndarray | torch.Tensor, spec: FeatureSpec) -> torch.Tensor:
    """Features for one clip. (n,) -> (n_mels, n // hop) for log_mel, (n,) -> (1, n) for waveform."""
    wav = torch.as_tensor(waveform, dtype=torch.float32).reshape(-1)
    if spec.kind == "waveform":
        if spec.normalize_waveform and wav.numel() > 1:
            wav = (wav - wav.mean()) / torch.sqrt(wav.var() + 1e-7)
        return wav.unsqueeze(0)
    if spec.kind != "log_mel":
        raise ValueError(f"unknown feature kind {spec.kind!r}; valid: log_mel, waveform")
    n_frames = num_feature_frames(spec, wav.numel())
    if n_frames == 0:
        return torch.zeros(spec.n_mels, 0)
    stft = torch.stft(wav, spec.n_fft, spec.hop_length, window=_window(spec.n_fft), return_complex=True)
    spec_c = stft[..., :-1]
    power = spec_c.real.square() + spec_c.imag.square()  # (n_freq, n // hop); |z|^2 without a sqrt
    mel = _mel_filters(spec.n_mels, spec.n_fft, spec.sample_rate) @ power
    logm = torch.clamp(mel, min=1e-10).log10()
    logm = torch.maximum(logm, logm.max() - 8.0)
    return ((logm + 4.0) / 4.0)[:, :n_frames]
