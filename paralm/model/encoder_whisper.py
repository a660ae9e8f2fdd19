"""Whisper's encoder run on the batch's real length instead of a 30-s padded window.

transformers' `WhisperEncoder.forward` insists on exactly 3000 mel frames; on a mix of short clips
most of that compute is spent on padding. Here its submodules are called directly: convolutions on the
real length, positional embeddings sliced to the frames present, and an attention mask that hides
padded key frames. The conv1 output past each clip's end is zeroed before conv2, so a clip's frames do
not depend on how much padding its batch carries.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from paralm.audio import ConvLayer, FeatureSpec
from paralm.model.config import EncoderConfig
from paralm.model.encoder_base import EncoderLayout, SpeechEncoder, lengths_mask
from paralm.model.weights import read_submodule_state, require_folder

# Fixed by the Whisper architecture: conv1 (k3, s1, p1) then conv2 (k3, s2, p1).
WHISPER_CONVS = (ConvLayer(3, 1, 1), ConvLayer(3, 2, 1))
WHISPER_HOP = 160
WHISPER_SAMPLE_RATE = 16000


class WhisperSpeechEncoder(SpeechEncoder):
    """Any Whisper size; weights from a local Whisper folder or random init from a config dict."""

    def __init__(self, encoder: WhisperEncoder, layout: EncoderLayout):
        super().__init__(layout)
        self.model = encoder
        convs = (encoder.conv1, encoder.conv2)
        found = tuple(ConvLayer(c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs)
        if found != WHISPER_CONVS:
            raise ValueError(f"unexpected Whisper convolutions {found}; expected {WHISPER_CONVS}")

    @classmethod
    def load_hf_config(cls, cfg: EncoderConfig) -> WhisperConfig:
        if cfg.path is not None:
            folder = require_folder(cfg.path, "whisper encoder")
            return WhisperConfig.from_pretrained(str(folder), local_files_only=True)
        options = {k: v for k, v in cfg.config.items() if k != "model_type"}
        return WhisperConfig(**options)

    @classmethod
    def layout_for(cls, hf_config: WhisperConfig, cfg: EncoderConfig) -> EncoderLayout:
        window = hf_config.max_source_positions * WHISPER_CONVS[0].stride * WHISPER_CONVS[1].stride
        wanted = round(cfg.chunk_seconds * WHISPER_SAMPLE_RATE / WHISPER_HOP)
        chunk = window if wanted <= 0 else min(window, wanted)  # never beyond the positional table
        features = FeatureSpec(kind="log_mel", sample_rate=WHISPER_SAMPLE_RATE, n_mels=hf_config.num_mel_bins,
                               n_fft=400, hop_length=WHISPER_HOP)
        return EncoderLayout(features=features, convs=WHISPER_CONVS, chunk_frames=chunk)

    @classmethod
    def from_settings(cls, cfg: EncoderConfig) -> WhisperSpeechEncoder:
        hf_config = cls.load_hf_config(cfg)
        hf_config._attn_implementation = "sdpa"
        if cfg.path is None:
            encoder = WhisperEncoder(hf_config)
        else:
            state = read_submodule_state(cfg.path, "conv1.weight")
            with torch.device("meta"):
                encoder = WhisperEncoder(hf_config)
            encoder.load_state_dict(state, strict=True, assign=True)
            encoder = encoder.float()
        return cls(encoder, cls.layout_for(hf_config, cfg))

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.d_model)

    def fixed_parameters(self) -> list[nn.Parameter]:
        return [self.model.embed_positions.weight]

    def lora_root(self) -> nn.Module:
        return self.model

    def encode_rows(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(R, n_mels, T), (R,) -> (R, ceil(T/2), d_model), (R,)."""
        enc = self.model
        features = features.to(enc.conv1.weight.dtype)  # bf16 after cast_frozen, even outside autocast
        keep = lengths_mask(lengths, features.shape[-1]).unsqueeze(1).to(features.dtype)  # (R, 1, T)
        x = nn.functional.gelu(enc.conv1(features * keep)) * keep
        x = nn.functional.gelu(enc.conv2(x)).transpose(1, 2)  # (R, F, D)
        frame_lengths = self.frame_lengths(lengths)
        n_frames = x.shape[1]
        x = x + enc.embed_positions.weight[:n_frames].to(x.dtype)
        x = nn.functional.dropout(x, p=enc.dropout, training=self.training)
        valid = lengths_mask(frame_lengths, n_frames)  # (R, F)
        mask = torch.zeros(valid.shape, dtype=x.dtype, device=x.device)
        mask = mask.masked_fill(~valid, torch.finfo(x.dtype).min)[:, None, None, :]  # (R, 1, 1, F) additive
        for layer in enc.layers:
            if self.training and enc.layerdrop > 0 and torch.rand([]) < enc.layerdrop:
                continue
            x = layer(x, mask)
        return enc.layer_norm(x), frame_lengths
