"""The interface every speech encoder implements, and the chunking they share.

An encoder turns padded features into padded frames and says how long each clip's output is. Long
clips are split into fixed windows that become extra batch rows; their outputs are joined back per
clip, so a 45-s clip through a 30-s encoder gives the frames of a 30-s and a 15-s window in order
(exactly what `AudioTokenSpec.encoder_frames_from_features` counts).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from paralm.audio import ConvLayer, FeatureSpec
from paralm.model.config import EncoderConfig


@dataclass(frozen=True)
class EncoderLayout:
    """What the data side must know about an encoder, derived from its config alone (no weights).

    Args:
        features: the feature front end it consumes.
        convs: its downsampling convolutions, in order.
        chunk_frames: feature frames per window for long clips (0 = no chunking).
    """

    features: FeatureSpec
    convs: tuple[ConvLayer, ...]
    chunk_frames: int


def lengths_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """(B,) -> (B, size) bool, True on each row's first `lengths[b]` positions."""
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


def zero_beyond(frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, F, D) with frames at or past each row's length set to 0."""
    return frames * lengths_mask(lengths, frames.shape[1]).unsqueeze(-1).to(frames.dtype)


def split_into_chunks(
    features: torch.Tensor, lengths: torch.Tensor, chunk: int
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(B, C, T) -> rows (R, C, min(T, chunk)), row lengths (R,), owner clip index per row."""
    rows, row_lengths, owners = [], [], []
    for clip, length in enumerate(lengths.tolist()):
        n_chunks = max(1, -(-length // chunk))
        for j in range(n_chunks):
            start, stop = j * chunk, min((j + 1) * chunk, length)
            rows.append(features[clip, :, start:stop].transpose(0, 1))  # (t, C)
            row_lengths.append(max(0, stop - start))
            owners.append(clip)
    width = min(features.shape[-1], chunk)
    padded = pad_sequence(rows, batch_first=True)  # (R, t_max, C)
    padded = nn.functional.pad(padded, (0, 0, 0, width - padded.shape[1]))
    return padded.transpose(1, 2), torch.tensor(row_lengths, device=lengths.device), owners


def merge_chunks(
    frames: torch.Tensor, lengths: torch.Tensor, owners: list[int], batch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows (R, F, D) back to clips (B, F_total, D): each clip's valid frames concatenated in order."""
    pieces: list[list[torch.Tensor]] = [[] for _ in range(batch)]
    for row, (owner, length) in enumerate(zip(owners, lengths.tolist(), strict=True)):
        pieces[owner].append(frames[row, :length])
    joined = [torch.cat(p, dim=0) for p in pieces]
    out_lengths = torch.tensor([j.shape[0] for j in joined], device=lengths.device)
    return pad_sequence(joined, batch_first=True), out_lengths


class SpeechEncoder(nn.Module):
    """Base class: padded features in, padded frames out, lengths tracked throughout.

    Subclasses implement `load_hf_config`, `layout_for`, `from_settings` and `encode_rows`.
    """

    def __init__(self, layout: EncoderLayout):
        super().__init__()
        self.layout = layout

    # ---- built from config files only (the CLI calls these before any weights exist) ----
    @classmethod
    def load_hf_config(cls, cfg: EncoderConfig):
        """The transformers config of this encoder, from `cfg.path` or `cfg.config`, without weights."""
        raise NotImplementedError

    @classmethod
    def layout_for(cls, hf_config, cfg: EncoderConfig) -> EncoderLayout:
        """Feature spec, downsampling convs and chunk size implied by a config."""
        raise NotImplementedError

    @classmethod
    def from_settings(cls, cfg: EncoderConfig) -> SpeechEncoder:
        """Load weights from `cfg.path` or randomly initialise from `cfg.config`."""
        raise NotImplementedError

    # ---- the model ----
    @property
    def hidden_size(self) -> int:
        """Width D of the output frames, read from the loaded model."""
        raise NotImplementedError

    def feature_spec(self) -> FeatureSpec:
        return self.layout.features

    def token_convs(self) -> tuple[ConvLayer, ...]:
        return self.layout.convs

    @property
    def chunk_frames(self) -> int:
        return self.layout.chunk_frames

    def fixed_parameters(self) -> list[nn.Parameter]:
        """Parameters that stay frozen even when the encoder trains fully (e.g. sinusoidal positions)."""
        return []

    def lora_root(self) -> nn.Module:
        """The module LoRA adapters are injected into."""
        return self

    def encode_rows(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(R, C, T) features, (R,) lengths -> (R, F, D) frames, (R,) frame lengths; T <= chunk_frames."""
        raise NotImplementedError

    def frame_lengths(self, feature_lengths: torch.Tensor) -> torch.Tensor:
        """(B,) feature frames -> (B,) encoder frames of one window, by the conv arithmetic."""
        out = feature_lengths
        for conv in self.token_convs():
            out = torch.clamp((out + 2 * conv.padding - conv.kernel) // conv.stride + 1, min=0)
        return out

    def forward(self, features: torch.Tensor, feature_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, T), (B,) -> frames (B, F, D) zeroed past each clip, frame lengths (B,)."""
        feature_lengths = feature_lengths.to(device=features.device, dtype=torch.long)
        chunk = self.chunk_frames
        if chunk <= 0 or features.shape[-1] <= chunk:
            frames, lengths = self.encode_rows(features, feature_lengths)
        else:
            rows, row_lengths, owners = split_into_chunks(features, feature_lengths, chunk)
            row_frames, row_out = self.encode_rows(rows, row_lengths)
            frames, lengths = merge_chunks(row_frames, row_out, owners, features.shape[0])
        frames = frames[:, : int(lengths.max()) if lengths.numel() else 0]  # extra batch padding
        return zero_beyond(frames, lengths), lengths
