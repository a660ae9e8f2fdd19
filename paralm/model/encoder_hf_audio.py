"""Waveform encoders from transformers (wav2vec2, HuBERT, WavLM, ...) behind the SpeechEncoder interface.

They consume raw samples, downsample with a stack of unpadded 1-D convolutions (about 320x), and
accept an attention mask over samples. Output lengths come from the model's own conv arithmetic.
"""

from __future__ import annotations

import json

import torch
from torch import nn
from transformers import AutoConfig, AutoModel

from paralm.audio import ConvLayer, FeatureSpec
from paralm.model.config import EncoderConfig
from paralm.model.encoder_base import EncoderLayout, SpeechEncoder, lengths_mask
from paralm.model.weights import require_folder


def _preprocessor_settings(cfg: EncoderConfig) -> dict:
    """Sample rate / normalisation from the folder's preprocessor_config.json, when there is one."""
    if cfg.path is None:
        return {}
    file = require_folder(cfg.path, "hf_audio encoder") / "preprocessor_config.json"
    return json.loads(file.read_text()) if file.is_file() else {}


class HFAudioEncoder(SpeechEncoder):
    """Any `AutoModel` audio encoder that exposes `_get_feat_extract_output_lengths`."""

    def __init__(self, model: nn.Module, layout: EncoderLayout):
        super().__init__(layout)
        if not hasattr(model, "_get_feat_extract_output_lengths"):
            raise TypeError(f"{type(model).__name__} has no conv feature extractor; hf_audio needs wav2vec2-like models")
        self.model = model

    @classmethod
    def load_hf_config(cls, cfg: EncoderConfig):
        if cfg.path is not None:
            folder = require_folder(cfg.path, "hf_audio encoder")
            return AutoConfig.from_pretrained(str(folder), local_files_only=True)
        if "model_type" not in cfg.config:
            raise ValueError("encoder.config for hf_audio needs a `model_type` (e.g. wav2vec2, hubert, wavlm)")
        options = dict(cfg.config)
        return AutoConfig.for_model(options.pop("model_type"), **options)

    @classmethod
    def layout_for(cls, hf_config, cfg: EncoderConfig) -> EncoderLayout:
        convs = [ConvLayer(k, s, 0) for k, s in zip(hf_config.conv_kernel, hf_config.conv_stride, strict=True)]
        if getattr(hf_config, "add_adapter", False):  # mirrors the model's own length formula
            convs += [ConvLayer(1, hf_config.adapter_stride, 0)] * hf_config.num_adapter_layers
        pre = _preprocessor_settings(cfg)
        rate = int(pre.get("sampling_rate", 16000))
        features = FeatureSpec(kind="waveform", sample_rate=rate, n_mels=1,
                               normalize_waveform=bool(pre.get("do_normalize", True)))
        return EncoderLayout(features=features, convs=tuple(convs), chunk_frames=round(cfg.chunk_seconds * rate))

    @classmethod
    def from_settings(cls, cfg: EncoderConfig) -> HFAudioEncoder:
        hf_config = cls.load_hf_config(cfg)
        if cfg.path is None:
            model = AutoModel.from_config(hf_config, attn_implementation="sdpa")
        else:
            model = AutoModel.from_pretrained(cfg.path, local_files_only=True, dtype=torch.float32)
        return cls(model, cls.layout_for(hf_config, cfg))

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def lora_root(self) -> nn.Module:
        return self.model

    def encode_rows(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(R, 1, T) waveform, (R,) samples -> (R, F, hidden), (R,) frames."""
        if features.shape[1] != 1:
            raise ValueError(f"hf_audio expects waveform features (B, 1, T), got channel size {features.shape[1]}")
        mask = lengths_mask(lengths, features.shape[-1])  # (R, T)
        dtype = next(p.dtype for p in self.model.parameters() if p.is_floating_point())  # bf16 after cast_frozen
        wav = (features[:, 0] * mask.to(features.dtype)).to(dtype)
        out = self.model(input_values=wav, attention_mask=mask.long()).last_hidden_state
        frame_lengths = self.model._get_feat_extract_output_lengths(lengths).long()
        return out, frame_lengths
