"""Voices, emotion presets and affect centres of the demo corpus (all numbers in one place).

Why these numbers: the prosody table follows what was measured on espeak-ng 1.51 + SoX 14.4.2 (see
data/demo/README.md): male and female variants sit about an octave apart, so absolute pitch does not give
the emotion away; every clip gets a random recording level, so loudness is only a weak cue.
"""

from __future__ import annotations

from dataclasses import dataclass

SEED = 20250807
SAMPLE_RATE = 16000
CORPUS = "paralm-demo"


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker.

    Args:
        id: short id used in keys ("v01").
        espeak: espeak-ng voice name with variant ("en-us+m3").
        pitch: base pitch (`-p`, 0..99).
        rate: base rate in words per minute (`-s`).
        gender: "male" | "female" (the variant's gender).
        split: "train" | "val" | "test" (voices never cross splits).
    """

    id: str
    espeak: str
    pitch: int
    rate: int
    gender: str
    split: str


VOICES: tuple[Voice, ...] = (
    Voice("v01", "en-us+m3", 40, 165, "male", "train"),
    Voice("v02", "en-us+f2", 55, 175, "female", "train"),
    Voice("v03", "en+m1", 45, 160, "male", "train"),
    Voice("v04", "en-us+f4", 60, 170, "female", "train"),
    Voice("v05", "en-gb-x-rp+m4", 40, 175, "male", "train"),
    Voice("v06", "en-029+f1", 50, 165, "female", "train"),
    Voice("v07", "en-us-nyc+Andy", 45, 170, "male", "train"),
    Voice("v08", "en+steph", 50, 170, "female", "train"),
    Voice("v09", "en-gb-x-gbclan+m8", 50, 168, "male", "train"),
    Voice("v10", "en-gb-scotland+aunty", 48, 172, "female", "train"),
    Voice("v11", "en-029+m2", 42, 170, "male", "val"),
    Voice("v12", "en+f3", 52, 172, "female", "val"),
    Voice("v13", "en-gb-scotland+m6", 50, 170, "male", "test"),
    Voice("v14", "en-us-nyc+f5", 45, 175, "female", "test"),
    Voice("v15", "en-gb-x-gbcwmd+m7", 44, 168, "male", "test"),
    Voice("v16", "en-us+belinda", 45, 170, "female", "test"),
)
# Two espeak-ng 1.51 traps avoided here: "en-gb+<variant>" silently ignores the variant (it resolves to
# the default male voice; "en+<variant>" applies it), and variants with an `intonation` line (m5, Alicia,
# Andrea, Annie, ...) override the SSML pitch range the emotion presets rely on (a linear probe could not
# tell their emotions apart when the voice was held out), so none of them is used.

# Each training voice reads a rotating window of the training sentences (per sentiment, this many), so
# more voices fit the size budget while every sentence is still read by several voices. Validation and
# test voices read every sentence of their split.
TRAIN_SENTENCES_PER_VOICE = {"neutral": 16, "positive": 4, "negative": 4}


@dataclass(frozen=True)
class EmotionPreset:
    """How one emotion is rendered, relative to the voice.

    Args:
        dp: added to the voice's `-p`.
        rate: multiplies the voice's rate.
        range: SSML prosody range (0..100; F0 spread from about 1 to about 13 semitones).
        gain_db: level change in dB (on top of a -12 dBFS peak normalisation; the loudest clip peaks at -3 dBFS).
        effects: SoX effects as (name, ((low, high) or fixed value, ...)); numbers drawn per clip.
        question_intonation: speak the final "." as "?" (rising end; the transcript keeps the ".").
    """

    dp: int
    rate: float
    range: int
    gain_db: float
    effects: tuple = ()
    question_intonation: bool = False


EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "fearful", "surprised")

PRESETS: dict[str, EmotionPreset] = {
    "neutral": EmotionPreset(0, 1.00, 35, 0.0),
    "happy": EmotionPreset(15, 1.12, 90, 2.0, (("treble", ((2.0, 4.0),)),)),
    "sad": EmotionPreset(-18, 0.78, 20, -5.0, (("lowpass", ((2500, 4000),)),)),
    "angry": EmotionPreset(5, 1.15, 70, 5.0, (("overdrive", ((6.0, 14.0),)), ("treble", ((3.0, 6.0),)))),
    "fearful": EmotionPreset(22, 1.25, 35, -2.0, (("tremolo", ((5.0, 8.0), (50.0, 70.0))),)),
    "surprised": EmotionPreset(30, 0.85, 100, 3.0, question_intonation=True),
}

# Per-clip uniform jitter (+/-): pitch offset, relative rate, SSML range, gain in dB, each affect dimension.
JITTER = {"dp": 6, "rate": 0.08, "range": 15, "gain_db": 4.0, "affect": 0.05}

# Arousal / valence / dominance centres on 0..1: the pleasure-arousal-dominance ratings of Russell and
# Mehrabian (1977, "Evidence for a three-factor theory of emotions") for the closest terms, rescaled from
# -1..1 with (x + 1) / 2 and rounded; neutral is the midpoint.
AFFECT: dict[str, dict[str, float]] = {
    "neutral": {"arousal": 0.50, "valence": 0.50, "dominance": 0.50},
    "happy": {"arousal": 0.75, "valence": 0.90, "dominance": 0.70},
    "sad": {"arousal": 0.35, "valence": 0.20, "dominance": 0.35},
    "angry": {"arousal": 0.80, "valence": 0.25, "dominance": 0.65},
    "fearful": {"arousal": 0.80, "valence": 0.20, "dominance": 0.30},
    "surprised": {"arousal": 0.85, "valence": 0.70, "dominance": 0.45},
}

# Sign of each emotion's valence, used to say whether tone and words agree (surprise leans positive).
VALENCE_SIGN = {"neutral": 0, "happy": 1, "surprised": 1, "sad": -1, "angry": -1, "fearful": -1}
