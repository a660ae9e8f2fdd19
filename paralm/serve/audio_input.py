"""Encoded audio from a user (a file for `paralm ask`, a base64 part for `paralm serve`) -> mono float32
at the model's rate, through the data path's own decoder and resampler (paralm.data.reader.decode_audio),
so a clip is heard exactly as training heard it. Refusals carry a reason and a one-line detail."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from paralm.data.reader import DecodeOptions, SkipSample, decode_audio


class AudioRefused(ValueError):
    """Audio that cannot be used: reason is corrupt_audio | non_finite_audio | too_short | audio_too_long."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def decode_clip(data: bytes, sample_rate: int, max_seconds: float | None = None) -> np.ndarray:
    """(n,) float32 mono at `sample_rate`; the length limit is checked from the header before decoding
    when the format says it (a 10-minute upload is refused without decoding 10 minutes)."""
    if max_seconds is not None:
        try:
            seconds = sf.info(io.BytesIO(data)).duration
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, EOFError):
            seconds = None  # undecodable: decode_audio below says why
        if seconds is not None and seconds > max_seconds:
            raise AudioRefused("audio_too_long", f"{seconds:.1f} s of audio is over the {max_seconds:g}-s limit")
    try:
        return decode_audio(data, DecodeOptions(sample_rate=sample_rate, max_duration=max_seconds,
                                                require_transcript=False))
    except SkipSample as err:
        reason = "audio_too_long" if err.reason == "too_long" else err.reason
        raise AudioRefused(reason, err.detail or reason) from None
