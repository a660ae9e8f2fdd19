"""Render one clip: draw its prosody from the emotion preset, speak it with espeak-ng, shape it with SoX.

Needs the Debian/Ubuntu packages `espeak-ng` and `sox` (only for rebuilding; the committed corpus does not).
Each clip's random draws come from its own generator seeded by (corpus seed, voice, sentence, emotion), so
the parameters do not depend on the order in which a process pool renders the clips.
"""

from __future__ import annotations

import io
import random
import subprocess
from dataclasses import asdict, dataclass
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf
from presets import JITTER, PRESETS, SAMPLE_RATE, Voice

HEADROOM_DBFS = -12.0  # peak level every clip is normalised to before its emotion and recording gain
TRIM_DB = -45.0  # trailing samples quieter than this (relative to the clip's peak) are silence
TRIM_PAD_S = 0.1  # silence kept after the last sound


@dataclass(frozen=True)
class Prosody:
    """The drawn rendering parameters of one clip (kept in its metadata for reproducibility).

    Args:
        pitch: espeak-ng `-p` (0..99).
        rate: espeak-ng `-s` in words per minute.
        range: SSML prosody range (0..100).
        gain_db: gain applied after peak normalisation.
        effects: SoX effect arguments, e.g. ["treble", "3.1"].
        question_intonation: the final "." was spoken as "?".
    """

    pitch: int
    rate: int
    range: int
    gain_db: float
    effects: tuple[str, ...]
    question_intonation: bool

    def to_dict(self) -> dict:
        return {**asdict(self), "effects": list(self.effects)}


def clip_rng(seed: int, voice_index: int, sentence_index: int, emotion_index: int) -> random.Random:
    """A generator private to one clip (str seeds hash deterministically across processes)."""
    return random.Random(f"{seed}:{voice_index}:{sentence_index}:{emotion_index}")


def _effect_args(effects: tuple, rng: random.Random) -> tuple[str, ...]:
    args: list[str] = []
    for name, params in effects:
        args.append(name)
        for p in params:
            value = rng.uniform(*p) if isinstance(p, tuple) else p
            args.append(f"{value:.1f}")
    return tuple(args)


def draw_prosody(voice: Voice, emotion: str, rng: random.Random) -> Prosody:
    """Preset + uniform per-clip jitter (pitch, rate, range, gain, effect parameters)."""
    preset = PRESETS[emotion]
    pitch = voice.pitch + preset.dp + rng.randint(-JITTER["dp"], JITTER["dp"])
    rate = voice.rate * preset.rate * (1.0 + rng.uniform(-JITTER["rate"], JITTER["rate"]))
    rng_range = preset.range + rng.randint(-JITTER["range"], JITTER["range"])
    gain = preset.gain_db + rng.uniform(-JITTER["gain_db"], JITTER["gain_db"])
    return Prosody(
        pitch=min(99, max(0, pitch)),
        rate=int(round(rate)),
        range=min(100, max(0, rng_range)),
        gain_db=round(gain, 2),
        effects=_effect_args(preset.effects, rng),
        question_intonation=preset.question_intonation,
    )


def espeak_command(voice: Voice, prosody: Prosody, text: str) -> list[str]:
    """espeak-ng reading SSML (`-m`) with the clip's pitch, rate and F0 range, WAV on stdout."""
    spoken = text[:-1] + "?" if prosody.question_intonation and text.endswith(".") else text
    ssml = f'<speak><prosody range="{prosody.range}">{escape(spoken)}</prosody></speak>'
    return ["espeak-ng", "-m", "-v", voice.espeak, "-p", str(prosody.pitch), "-s", str(prosody.rate),
            "-a", "100", "--stdout", ssml]


def sox_command(prosody: Prosody) -> list[str]:
    """SoX: resample to 16 kHz mono 16 bit, apply effects, normalise the peak, apply the gain (`-R`: no random dither)."""
    return ["sox", "-q", "-R", "-t", "wav", "-", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", "-t", "wav", "-",
            *prosody.effects, "gain", "-n", f"{HEADROOM_DBFS}", "vol", f"{prosody.gain_db}dB"]


def render(voice: Voice, prosody: Prosody, text: str) -> np.ndarray:
    """Speak `text`; returns float32 mono samples at SAMPLE_RATE. Raises if either tool fails."""
    speech = subprocess.run(espeak_command(voice, prosody, text), capture_output=True, check=True).stdout
    shaped = subprocess.run(sox_command(prosody), input=speech, capture_output=True, check=True).stdout
    audio, sr = sf.read(io.BytesIO(shaped), dtype="float32")
    if sr != SAMPLE_RATE or audio.ndim != 1 or audio.size == 0:
        raise RuntimeError(f"sox returned {audio.shape} at {sr} Hz for {text!r}; expected mono at {SAMPLE_RATE}")
    return trim_trailing_silence(audio)


def trim_trailing_silence(audio: np.ndarray) -> np.ndarray:
    """espeak-ng ends every utterance with 0.2-0.9 s of silence; keep TRIM_PAD_S of it (smaller shards)."""
    level = np.abs(audio)
    loud = np.nonzero(level > level.max() * 10 ** (TRIM_DB / 20))[0]
    end = min(audio.size, int(loud[-1]) + 1 + int(TRIM_PAD_S * SAMPLE_RATE)) if loud.size else audio.size
    return audio[:end]
