"""The typed batch that flows from collate to the LightningModule.

Shapes (B = batch size, L = padded text length incl. audio placeholders, T = padded feature frames):
    input_ids        (B, L) long   prompt + answer token ids; each clip's audio is a run of exactly
                                   `AudioTokenSpec.num_tokens(n_samples)` placeholder ids
    attention_mask   (B, L) long   1 for real tokens, 0 for padding (left or right padding both valid)
    labels           (B, L) long   target ids on answer tokens, -100 everywhere else (prompt, audio, pad)
    features         (B, C, T)     log-mel (C = n_mels) or waveform (C = 1), zero-padded past each clip
    feature_lengths  (B,) long     real feature frames per clip
    audio_token_counts (B,) long   placeholder tokens per clip (what collate inserted)
    encoder_states   (B, F, D)     optional cached encoder output (frozen encoders); then `features`
                                   may be empty and `encoder_lengths` (B,) gives real frames
    is_pad           (B,) bool     True for a filler copy (the padding of the last uneven batch across
                                   ranks, see paralm/data/plan.py); losses and metrics skip it. Set by the
                                   collator; all False when a batch is built without it
Per-sample metadata lists have length B (`meta[i]["is_pad"]` repeats `is_pad[i]` for readers of rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch

from paralm.perf.chunked_ce import IGNORE_INDEX


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    features: torch.Tensor
    feature_lengths: torch.Tensor
    audio_token_counts: torch.Tensor
    keys: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    question_types: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    meta: list[dict] = field(default_factory=list)
    audio_seconds: torch.Tensor | None = None
    encoder_states: torch.Tensor | None = None
    encoder_lengths: torch.Tensor | None = None
    prompt_lengths: torch.Tensor | None = None
    is_pad: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.is_pad is None:  # a batch built by hand holds only real items
            self.is_pad = torch.zeros(len(self), dtype=torch.bool, device=self.input_ids.device)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Batch:
        """Tensors to `device`; floating tensors (features, encoder states) also to `dtype` if given."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                v = v.to(device)
                if dtype is not None and v.is_floating_point():
                    v = v.to(dtype)
            out[f.name] = v
        return replace(self, **out)

    def num_answer_tokens(self) -> int:
        return int((self.labels != IGNORE_INDEX).sum())


SHARED_MEMORY_MIN_BYTES = 1 << 20
_NO_NUMPY = (torch.bfloat16,)  # e.g. cached encoder states from a bf16 encoder: stay tensors


@dataclass
class TransferBatch:
    """A Batch on its way from a dataloader worker to the main process.

    Why: the DataLoader moves every tensor a worker returns into its own shared-memory segment, and
    creating, sending and mapping one costs about as much as log-mel of a short clip (~0.3-0.5 ms per
    tensor, measured), whatever its size. A Batch has about eight tensors, most of them a few hundred
    bytes. Here tensors under `SHARED_MEMORY_MIN_BYTES` travel as numpy arrays (pickled by value
    through the worker's pipe) and only the large ones (features, cached encoder states) take shared
    memory; `unpack` restores an identical Batch without copying.
    """

    fields: dict

    @classmethod
    def pack(cls, batch: Batch) -> TransferBatch:
        out = {}
        for f in fields(batch):
            v = getattr(batch, f.name)
            small = isinstance(v, torch.Tensor) and v.numel() * v.element_size() < SHARED_MEMORY_MIN_BYTES
            out[f.name] = v.numpy() if small and v.dtype not in _NO_NUMPY else v
        return cls(out)

    def unpack(self) -> Batch:
        return Batch(
            **{k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in self.fields.items()}
        )
