"""Projectors: encoder frames -> LLM-width audio tokens, k frames per token.

All share one contract: (B, F, D) frames + (B,) frame lengths -> (B, N, H) tokens + (B,) counts with
N = max_i ceil(F_i / k) and counts = ceil(frame_lengths / k). Frames past a clip's length are zeroed
and the frame axis is right-padded with zeros to a multiple of k, so a clip's last partial group sees
the same zeros alone or in any batch.
"""

from __future__ import annotations

import torch
from torch import nn

from paralm.model.config import ProjectorConfig
from paralm.model.encoder_base import zero_beyond


def token_counts(frame_lengths: torch.Tensor, stack: int) -> torch.Tensor:
    """(B,) frames -> (B,) tokens, ceil(frames / k)."""
    return torch.div(frame_lengths + stack - 1, stack, rounding_mode="floor")


def pad_frames(frames: torch.Tensor, frame_lengths: torch.Tensor, stack: int) -> torch.Tensor:
    """(B, F, D) -> (B, N*k, D), N = ceil(max_len / k); zero past each length and in the right padding."""
    n_tokens = int(token_counts(frame_lengths, stack).max()) if frame_lengths.numel() else 0
    frames = zero_beyond(frames[:, : n_tokens * stack], frame_lengths)
    return nn.functional.pad(frames, (0, 0, 0, n_tokens * stack - frames.shape[1]))


def stack_frames(frames: torch.Tensor, frame_lengths: torch.Tensor, stack: int) -> torch.Tensor:
    """(B, F, D) -> (B, N, k*D); each token is k consecutive frames concatenated."""
    padded = pad_frames(frames, frame_lengths, stack)
    b, n, d = padded.shape
    return padded.reshape(b, n // stack, stack * d)


class Projector(nn.Module):
    """Base: subclasses define `project` on stacked or raw frames."""

    def __init__(self, cfg: ProjectorConfig, in_size: int, out_size: int):
        super().__init__()
        self.stack = cfg.stack
        self.in_size = in_size
        self.out_size = out_size

    def forward(self, frames: torch.Tensor, frame_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, F, D), (B,) -> (B, N, H), (B,)."""
        frame_lengths = frame_lengths.to(device=frames.device, dtype=torch.long)
        return self.project(frames, frame_lengths), token_counts(frame_lengths, self.stack)

    def project(self, frames: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class StackMLPProjector(Projector):
    """Stack k frames -> Linear -> GELU -> Linear (the Whisper+LLM adapter most Speech-LLMs use)."""

    def __init__(self, cfg: ProjectorConfig, in_size: int, out_size: int):
        super().__init__(cfg, in_size, out_size)
        hidden = cfg.hidden_size or out_size
        self.net = nn.Sequential(
            nn.Linear(in_size * cfg.stack, hidden), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(hidden, out_size)
        )

    def project(self, frames: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        return self.net(stack_frames(frames, frame_lengths, self.stack))  # (B, N, k*D) -> (B, N, H)


class GatedMLPProjector(Projector):
    """Stack k -> Linear + SiLU -> gated linear unit (SiLU(gate) * up) -> Linear (MERaLiON style)."""

    def __init__(self, cfg: ProjectorConfig, in_size: int, out_size: int):
        super().__init__(cfg, in_size, out_size)
        hidden = cfg.hidden_size or out_size
        self.inner = nn.Sequential(nn.Linear(in_size * cfg.stack, hidden), nn.SiLU())
        self.gate = nn.Linear(hidden, hidden)
        self.up = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(hidden, out_size)

    def project(self, frames: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        x = self.inner(stack_frames(frames, frame_lengths, self.stack))  # (B, N, hidden)
        return self.out(self.dropout(nn.functional.silu(self.gate(x)) * self.up(x)))  # (B, N, H)


class ConvProjector(Projector):
    """Strided Conv1d (kernel = stride = k) -> GELU -> Linear; right zero padding to a multiple of k."""

    def __init__(self, cfg: ProjectorConfig, in_size: int, out_size: int):
        super().__init__(cfg, in_size, out_size)
        hidden = cfg.hidden_size or out_size
        self.conv = nn.Conv1d(in_size, hidden, kernel_size=cfg.stack, stride=cfg.stack)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(hidden, out_size)

    def project(self, frames: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        x = pad_frames(frames, frame_lengths, self.stack).transpose(1, 2)  # (B, D, N*k)
        x = self.conv(x).transpose(1, 2)  # -> (B, N, hidden)
        return self.out(self.dropout(nn.functional.gelu(x)))


PROJECTORS: dict[str, type[Projector]] = {
    "stack_mlp": StackMLPProjector,
    "gated_mlp": GatedMLPProjector,
    "conv": ConvProjector,
}


def build_projector(cfg: ProjectorConfig, in_size: int, out_size: int) -> Projector:
    """Projector from the registry; sizes come from the loaded encoder (D) and LLM (H)."""
    if cfg.name not in PROJECTORS:
        raise ValueError(f"unknown projector {cfg.name!r}; valid: {', '.join(sorted(PROJECTORS))}")
    return PROJECTORS[cfg.name](cfg, in_size, out_size)
