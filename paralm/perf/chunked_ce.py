"""Next-token cross-entropy computed in chunks, only where there are targets, with a hand-written backward.

Why: with a large vocabulary the loss, not the model, sets the memory peak. Computed at once, it holds
the logits, a reshaped fp32 copy and the full fp32 log-softmax (kept for backward) together, and its
backward adds two more full-size gradients. Here the forward scores one chunk of one row at a time in
fp32 and keeps only the logits; the backward writes each chunk's gradient (softmax - one-hot) straight
into one gradient buffer. Chunks without an answer token (prompt, audio, padding: most of a Speech-LLM
sequence) are skipped in both directions. Values and gradients equal the unchunked loss.

Why not slice + torch.utils.checkpoint: autograd turns the backward of every slice into a full-size
(B, L, V) zero tensor that is then added up, which raises the peak instead of lowering it.

Shapes: logits (B, L, V) any float dtype, labels (B, L) with -100 outside answers
        -> per-token losses (B, L - 1) fp32 (0 where the shifted label is -100).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def _chunks(targets: torch.Tensor, chunk: int) -> list[tuple[int, int, int]]:
    """(row, start, stop) of every chunk that holds at least one target (one host sync per batch)."""
    b, n = targets.shape
    starts = list(range(0, n, chunk))
    padded = F.pad(targets != IGNORE_INDEX, (0, len(starts) * chunk - n))
    needed = padded.view(b, len(starts), chunk).any(dim=-1).tolist()
    return [(r, s, min(s + chunk, n)) for r in range(b) for j, s in enumerate(starts) if needed[r][j]]


class _ChunkedShiftedCE(torch.autograd.Function):
    """Per-token losses of logits[:, :-1] against targets = labels[:, 1:], chunk by chunk."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
        spans = _chunks(targets, chunk)
        losses = torch.zeros(targets.shape, dtype=torch.float32, device=logits.device)
        for row, start, stop in spans:
            piece = logits[row, start:stop].float()  # (n, V)
            losses[row, start:stop] = F.cross_entropy(piece, targets[row, start:stop], ignore_index=IGNORE_INDEX,
                                                      reduction="none")
        ctx.save_for_backward(logits, targets)
        ctx.spans = spans
        return losses

    @staticmethod
    def backward(ctx, grad_losses: torch.Tensor):
        logits, targets = ctx.saved_tensors
        grad = torch.zeros_like(logits)
        for row, start, stop in ctx.spans:
            target = targets[row, start:stop]
            valid = target != IGNORE_INDEX
            probs = torch.softmax(logits[row, start:stop].float(), dim=-1)  # (n, V)
            hit = torch.arange(stop - start, device=probs.device)[valid]
            probs[hit, target[valid]] -= 1.0
            scale = grad_losses[row, start:stop] * valid  # ignored positions get no gradient
            grad[row, start:stop] = (probs * scale[:, None]).to(grad.dtype)
        return grad, None, None


def chunked_token_losses(logits: torch.Tensor, labels: torch.Tensor, chunk: int) -> torch.Tensor:
    """Shifted per-token losses (B, L - 1), computed `chunk` positions of one row at a time."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1 positions, got {chunk}")
    return _ChunkedShiftedCE.apply(logits, labels[:, 1:], int(chunk))
