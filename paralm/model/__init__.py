"""Plain nn.Modules: encoder -> projector -> LLM. No Lightning, no loss.

    from paralm.model import SpeechLM, tiny_speech_lm_config
    model = SpeechLM.from_config(tiny_speech_lm_config())
"""

from paralm.model.builders import (
    tiny_llm_config,
    tiny_speech_lm_config,
    tiny_tokenizer,
    tiny_wav2vec2_config,
    tiny_whisper_config,
)
from paralm.model.config import EncoderConfig, LLMConfig, LoraSettings, ProjectorConfig, SpeechLMConfig
from paralm.model.encoder import ENCODERS, SpeechEncoder, build_encoder
from paralm.model.llm import build_tokenizer, load_llm
from paralm.model.projector import PROJECTORS, Projector, build_projector
from paralm.model.speech_lm import SpeechLM, audio_token_spec_for

__all__ = [
    "ENCODERS",
    "PROJECTORS",
    "EncoderConfig",
    "LLMConfig",
    "LoraSettings",
    "ProjectorConfig",
    "Projector",
    "SpeechEncoder",
    "SpeechLM",
    "SpeechLMConfig",
    "audio_token_spec_for",
    "build_encoder",
    "build_projector",
    "build_tokenizer",
    "load_llm",
    "tiny_llm_config",
    "tiny_speech_lm_config",
    "tiny_tokenizer",
    "tiny_wav2vec2_config",
    "tiny_whisper_config",
]
