"""Pad-free training rows: a batch's sequences packed into as few rows as fit, logits only where answers are.

Why: a Speech-LLM batch is padded to its longest prompt, and the demo corpus' prompts vary a lot (a
batch of 16 is about 40 % padding), while the loss needs logits only at answer positions (about a fifth
of the real tokens). Every position of the padded layout still pays for every linear layer and the LM
head. Packing the real tokens of several samples into one row, each sample with its own position ids
restarting at 0, lets the LLM's attention keep the samples apart (transformers builds a block-causal
mask from position ids that restart when no 2-D attention mask is given: its packed-sequence path), so
each sample gets the hidden states it would get alone; the LM head then runs on the answer positions
only. Same values as the padded path up to float rounding (tests/training/test_packed_loss.py).

Layout, for a batch of B rows padded to L:
    PackPlan.source    (R, L)  index into the flattened (B * L) padded positions, B * L = a filler
    PackPlan.position  (R, L)  position id of each packed slot (fillers: their own run from 0)
    PackPlan.dest      (B * L) packed flat index (into R * L) of each real padded position, -1 for padding
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from paralm.perf.chunked_ce import IGNORE_INDEX


@dataclass
class PackPlan:
    source: torch.Tensor
    position: torch.Tensor
    dest: torch.Tensor

    @property
    def rows(self) -> int:
        return int(self.source.shape[0])


def first_fit_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """Sample indices per row: longest first, each into the first row with room (deterministic)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        for r, free in enumerate(room):
            if free >= lengths[i]:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


def shares_rows(attention_mask: torch.Tensor) -> bool:
    """Whether packing this (B, L) batch puts two samples in one row (what the first-batch check must see)."""
    lengths = attention_mask.bool().sum(dim=1).tolist()
    return len(first_fit_rows(lengths, attention_mask.shape[1])) < len(lengths)


def pack_plan(attention_mask: torch.Tensor) -> PackPlan:
    """(B, L) attention mask (1 = real token, any padding side) -> where each real token goes."""
    b, length = attention_mask.shape
    device = attention_mask.device
    real = attention_mask.bool().cpu()  # one device-to-host copy; the plan is built on the host
    lengths = real.sum(dim=1).tolist()
    rows = first_fit_rows(lengths, length)
    filler = b * length
    source = torch.full((len(rows), length), filler, dtype=torch.long)
    position = torch.zeros((len(rows), length), dtype=torch.long)
    dest = torch.full((b * length,), -1, dtype=torch.long)
    flat_real = [torch.nonzero(real[i], as_tuple=True)[0] + i * length for i in range(b)]
    for r, members in enumerate(rows):
        offset = 0
        for i in members:
            n = lengths[i]
            source[r, offset:offset + n] = flat_real[i]
            position[r, offset:offset + n] = torch.arange(n)
            dest[flat_real[i]] = r * length + offset + torch.arange(n)
            offset += n
        position[r, offset:] = torch.arange(length - offset)  # filler run: a sequence of its own
    return PackPlan(source.to(device), position.to(device), dest.to(device))


def pack_embeds(embeds: torch.Tensor, plan: PackPlan) -> torch.Tensor:
    """(B, L, H) padded inputs -> (R, L, H) packed rows (fillers are zero vectors)."""
    b, length, hidden = embeds.shape
    flat = torch.cat([embeds.reshape(b * length, hidden), embeds.new_zeros(1, hidden)])
    return flat[plan.source]


@dataclass
class AnswerTargets:
    """Where the loss is taken, in padded coordinates: position t predicts the label at t + 1.

    flat (N,) index into B * L; sample (N,) its row; target (N,) the next-token label."""

    flat: torch.Tensor
    sample: torch.Tensor
    target: torch.Tensor


def answer_targets(labels: torch.Tensor) -> AnswerTargets:
    """(B, L) labels (-100 outside answers) -> the N positions whose next token is an answer token."""
    b, length = labels.shape
    shifted = torch.full_like(labels, IGNORE_INDEX)
    shifted[:, :-1] = labels[:, 1:]
    flat = torch.nonzero(shifted.reshape(-1) != IGNORE_INDEX, as_tuple=True)[0]
    return AnswerTargets(flat=flat, sample=flat // length, target=shifted.reshape(-1)[flat])


def packed_positions(targets: AnswerTargets, plan: PackPlan) -> torch.Tensor:
    """Packed flat index (into R * L) of each answer position; refuses a position on padding."""
    where = plan.dest[targets.flat]
    if bool((where < 0).any()):
        raise ValueError("an answer-predicting position lies on padding (the attention mask and labels disagree)")
    return where


def per_sample(values: torch.Tensor, sample: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) per-token losses -> per-sample sums (B,) fp32 and answer-token counts (B,)."""
    sums = torch.zeros(batch, dtype=values.dtype, device=values.device).index_add(0, sample, values)
    counts = torch.bincount(sample, minlength=batch)
    return sums, counts
