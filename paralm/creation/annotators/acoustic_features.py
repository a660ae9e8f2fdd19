"""Model-free prosodic measurements of a clip: pitch (YIN), energy (RMS), speaking rate, spectrum.

Used by the rule-based `acoustic` annotator and, as a feature vector, by the fitted `acoustic_fit`
classifier. Everything is numpy on 16 kHz-ish mono audio; a 10-s clip takes a few milliseconds.

Pitch: YIN's cumulative-mean-normalised difference over 40-ms frames (10-ms hop), with the
difference function computed through FFT autocorrelation; a frame is voiced when the normalised
difference dips below `yin_threshold` inside the 60-400 Hz lag range and the frame is no more than
35 dB below the loudest frame. Speaking rate: syllable nuclei = peaks of the smoothed energy
envelope in voiced regions that rise at least 2 dB above the surrounding dips, at least 100 ms apart,
per second of active (non-silent) time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOP_S = 0.010
WIN_S = 0.040
F0_MIN, F0_MAX = 60.0, 400.0


@dataclass
class Prosody:
    """Per-clip measurements (NaN where undefined, e.g. pitch of a clip without voiced frames).

    Args:
        energy_db: mean frame RMS in dBFS over active frames.
        energy_db_std: its standard deviation.
        energy_db_range: 90th minus 10th percentile of active-frame dB.
        pitch_hz: median f0 over voiced frames.
        pitch_st: `pitch_hz` in semitones relative to 100 Hz.
        pitch_st_std: f0 standard deviation in semitones.
        pitch_st_range: 90th minus 10th percentile of f0 in semitones.
        voiced_fraction: voiced frames / active frames.
        rate: syllable nuclei per second of active time.
        centroid_hz: mean spectral centroid of active frames.
        active_s: seconds of non-silent audio.
        duration: clip length in seconds.
    """

    energy_db: float
    energy_db_std: float
    energy_db_range: float
    pitch_hz: float
    pitch_st: float
    pitch_st_std: float
    pitch_st_range: float
    voiced_fraction: float
    rate: float
    centroid_hz: float
    active_s: float
    duration: float

    def vector(self) -> np.ndarray:
        """(F,) float64 in field order; NaN replaced by 0 and flagged by `pitch_missing` (last entry)."""
        values = np.array([getattr(self, name) for name in FEATURE_NAMES[:-1]], dtype=np.float64)
        missing = float(np.isnan(self.pitch_hz))
        return np.append(np.nan_to_num(values, nan=0.0), missing)


FEATURE_NAMES: tuple[str, ...] = tuple(Prosody.__dataclass_fields__) + ("pitch_missing",)


def frames(audio: np.ndarray, sr: int, win: int) -> np.ndarray:
    """(N,) -> (T, win) frames at a 10-ms hop, zero-padded at the end."""
    hop = max(1, int(round(HOP_S * sr)))
    n = max(1, 1 + (len(audio) - 1) // hop)
    padded = np.concatenate([audio, np.zeros(n * hop + win - len(audio), dtype=audio.dtype)])
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    return padded[idx]


def yin_f0(fr: np.ndarray, sr: int, threshold: float) -> np.ndarray:
    """(T, W+L) frames -> (T,) f0 in Hz (NaN when unvoiced); W = frame part compared, L = max lag."""
    max_lag = int(sr / F0_MIN)
    min_lag = max(2, int(sr / F0_MAX))
    w = fr.shape[1] - max_lag
    n_fft = 1 << int(np.ceil(np.log2(fr.shape[1])))
    acf = np.fft.irfft(np.conj(np.fft.rfft(fr[:, :w], n_fft)) * np.fft.rfft(fr, n_fft), n_fft)[:, : max_lag + 1]
    sq = np.concatenate([np.zeros((fr.shape[0], 1)), np.cumsum(fr**2, axis=1)], axis=1)
    lags = np.arange(max_lag + 1)
    energy_shift = sq[:, lags + w] - sq[:, lags]  # (T, L+1) sum of squares of the lagged window
    diff = np.maximum(sq[:, w : w + 1] + energy_shift - 2 * acf, 0.0)  # YIN difference d(tau)
    cum = np.cumsum(diff[:, 1:], axis=1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] * lags[1:] / np.maximum(cum, 1e-12)
    cmnd[:, :min_lag] = np.inf
    below = cmnd < threshold
    first = np.where(below.any(axis=1), below.argmax(axis=1), -1)
    f0 = np.full(fr.shape[0], np.nan)
    for t in np.flatnonzero(first >= 0):
        tau = first[t]
        while tau + 1 <= max_lag and cmnd[t, tau + 1] < cmnd[t, tau]:
            tau += 1  # walk down to the local minimum
        f0[t] = sr / tau
    return f0


def syllable_peaks(env_db: np.ndarray, voiced: np.ndarray, min_dip_db: float = 2.0, min_gap: int = 10) -> int:
    """Count peaks of the (T,) dB envelope inside voiced frames that stand `min_dip_db` above both dips."""
    smooth = np.convolve(env_db, np.ones(5) / 5, mode="same")
    count, last = 0, -min_gap
    for t in range(1, len(smooth) - 1):
        if not voiced[t] or not (smooth[t] >= smooth[t - 1] and smooth[t] > smooth[t + 1]):
            continue
        left = smooth[max(0, t - 25) : t].min(initial=smooth[t])
        right = smooth[t + 1 : t + 26].min(initial=smooth[t])
        if smooth[t] - max(left, right) >= min_dip_db and t - last >= min_gap:
            count, last = count + 1, t
    return count


def measure(audio: np.ndarray, sr: int, yin_threshold: float = 0.15, silence_db: float = 35.0) -> Prosody:
    """(N,) float mono audio -> Prosody."""
    audio = np.asarray(audio, dtype=np.float64)
    win = int(round(WIN_S * sr))
    fr = frames(audio, sr, win + int(sr / F0_MIN))
    rms_db = 20 * np.log10(np.sqrt(np.mean(fr[:, :win] ** 2, axis=1)) + 1e-8)  # (T,)
    active = rms_db > max(rms_db.max() - silence_db, -80.0)
    f0 = yin_f0(fr, sr, yin_threshold)
    voiced = active & np.isfinite(f0)
    spec = np.abs(np.fft.rfft(fr[:, :win] * np.hanning(win), axis=1))
    freqs = np.fft.rfftfreq(win, 1 / sr)
    centroid = (spec * freqs).sum(1) / np.maximum(spec.sum(1), 1e-12)
    act_db = rms_db[active]
    st = 12 * np.log2(f0[voiced] / 100.0)
    active_s = float(active.sum() * HOP_S)
    nan = float("nan")
    return Prosody(
        energy_db=float(act_db.mean()) if act_db.size else -80.0,
        energy_db_std=float(act_db.std()) if act_db.size else 0.0,
        energy_db_range=float(np.subtract(*np.percentile(act_db, [90, 10]))) if act_db.size else 0.0,
        pitch_hz=float(np.median(f0[voiced])) if st.size else nan,
        pitch_st=float(np.median(st)) if st.size else nan,
        pitch_st_std=float(st.std()) if st.size else nan,
        pitch_st_range=float(np.subtract(*np.percentile(st, [90, 10]))) if st.size else nan,
        voiced_fraction=float(voiced.sum() / max(1, active.sum())),
        rate=syllable_peaks(rms_db, voiced) / active_s if active_s > 0 else 0.0,
        centroid_hz=float(centroid[active].mean()) if active.any() else 0.0,
        active_s=active_s,
        duration=len(audio) / sr,
    )
