"""Model-free arousal from prosody: louder, higher and faster speech reads as more aroused.

Each of energy (dBFS), median pitch (semitones re 100 Hz) and speaking rate (syllables/s, or
words/s from the sample's word timings or transcript when `rate_source=transcript`) is z-scored
against reference statistics (defaults: typical read/conversational speech; override them per
corpus), the available z-scores are averaged, and arousal = sigmoid(mean z) on 0..1. The coarse
`category` is `low_arousal` / `medium_arousal` / `high_arousal` by the `low` / `high` thresholds.
No emotion is claimed: prosody alone cannot tell angry from happy. The measurements themselves are
kept under `acoustic` so later stages (e.g. QA generation) can describe how something was said.
"""

from __future__ import annotations

import math

from paralm.creation.annotators.acoustic_features import Prosody, measure
from paralm.creation.annotators.base import AnnotatorInput, register_annotator

RATE_SOURCES = ("audio", "transcript")


def words_per_second(meta: dict, prosody: Prosody) -> float | None:
    """Words per second of active speech from `words` timings or the transcript; None without text."""
    words = meta.get("words") or []
    if words:
        span = max(w["end"] for w in words) - min(w["start"] for w in words)
        return len(words) / span if span > 0 else None
    n = len(str(meta.get("transcript", "")).split())
    return n / prosody.active_s if n and prosody.active_s > 0 else None


@register_annotator("acoustic")
class AcousticAnnotator:
    """Arousal (0..1) + coarse arousal category from z-scored energy, pitch and speaking rate."""

    needs_audio = True

    def __init__(self, id: str, *, device: str = "cpu", energy_mean: float = -26.0, energy_std: float = 6.0,
                 pitch_mean: float = 7.0, pitch_std: float = 5.0, rate_mean: float = 3.5, rate_std: float = 1.5,
                 rate_source: str = "audio", low: float = 0.4, high: float = 0.6) -> None:
        """
        Args:
            id: prediction key under labels.pred.
            device: unused (numpy only).
            energy_mean: reference mean of active-frame energy, dBFS.
            energy_std: reference standard deviation of energy, dB.
            pitch_mean: reference median pitch, semitones re 100 Hz (7 st ~ 150 Hz).
            pitch_std: reference pitch spread across speakers, semitones.
            rate_mean: reference speaking rate (syllables/s, or words/s with rate_source=transcript).
            rate_std: reference speaking-rate standard deviation.
            rate_source: audio (syllable nuclei) | transcript (words/s; falls back to audio without text).
            low: arousal below this is `low_arousal`.
            high: arousal at or above this is `high_arousal`.
        """
        if rate_source not in RATE_SOURCES:
            raise ValueError(f"annotator {id!r} (acoustic): rate_source {rate_source!r} is not one of {RATE_SOURCES}")
        if min(energy_std, pitch_std, rate_std) <= 0 or not 0 <= low <= high <= 1:
            raise ValueError(f"annotator {id!r} (acoustic): stds must be > 0 and 0 <= low <= high <= 1")
        self.id = id
        self.params = {"energy": (energy_mean, energy_std), "pitch": (pitch_mean, pitch_std),
                       "rate": (rate_mean, rate_std), "rate_source": rate_source, "low": low, "high": high}
        self.version = "acoustic-v1"

    def describe(self) -> dict:
        return {"kind": self.kind, "version": self.version, "params": self.params}

    def predict_one(self, prosody: Prosody, meta: dict) -> dict:
        rate = prosody.rate
        if self.params["rate_source"] == "transcript":
            rate = words_per_second(meta, prosody) or rate
        values = {"energy": prosody.energy_db if prosody.active_s > 0 else math.nan,
                  "pitch": prosody.pitch_st, "rate": rate if prosody.active_s > 0 else math.nan}
        z = {k: (v - self.params[k][0]) / self.params[k][1] for k, v in values.items() if math.isfinite(v)}
        measurements = {"energy_db": prosody.energy_db, "pitch_hz": prosody.pitch_hz, "rate": rate,
                        "voiced_fraction": prosody.voiced_fraction}
        pred: dict = {"acoustic": {k: round(v, 4) for k, v in measurements.items() if math.isfinite(v)},
                      "version": self.version}
        if not z:
            return pred
        arousal = 1.0 / (1.0 + math.exp(-sum(z.values()) / len(z)))
        level = "low" if arousal < self.params["low"] else "high" if arousal >= self.params["high"] else "medium"
        return {**pred, "arousal": arousal, "category": f"{level}_arousal", "z": {k: round(v, 4) for k, v in z.items()}}

    def annotate(self, batch: list[AnnotatorInput]) -> list[dict]:
        return [self.predict_one(measure(b.audio, b.sample_rate), b.meta) for b in batch]
