"""Registry of speech encoders: name -> class implementing `SpeechEncoder`.

Interface (see encoder_base.py):
    forward(features (B, C, T), feature_lengths (B,)) -> (frames (B, F, D), frame_lengths (B,))
    hidden_size, feature_spec(), token_convs(), chunk_frames
"""

from __future__ import annotations

from paralm.model.config import EncoderConfig
from paralm.model.encoder_base import EncoderLayout, SpeechEncoder
from paralm.model.encoder_hf_audio import HFAudioEncoder
from paralm.model.encoder_whisper import WhisperSpeechEncoder

ENCODERS: dict[str, type[SpeechEncoder]] = {
    "whisper": WhisperSpeechEncoder,
    "hf_audio": HFAudioEncoder,
}


def encoder_class(name: str) -> type[SpeechEncoder]:
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; valid: {', '.join(sorted(ENCODERS))}")
    return ENCODERS[name]


def build_encoder(cfg: EncoderConfig) -> SpeechEncoder:
    """Load (local folder) or randomly initialise (config dict) the configured encoder."""
    return encoder_class(cfg.name).from_settings(cfg)


def encoder_layout(cfg: EncoderConfig) -> EncoderLayout:
    """Feature spec, convs and chunking from config files only (no weights are read)."""
    cls = encoder_class(cfg.name)
    return cls.layout_for(cls.load_hf_config(cfg), cfg)


__all__ = ["ENCODERS", "EncoderLayout", "SpeechEncoder", "build_encoder", "encoder_class", "encoder_layout"]
