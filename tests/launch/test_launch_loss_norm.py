"""Loss normalisation under DDP: `global_tokens` makes the ranks' gradient average equal the one-process gradient.

DDP averages gradients over ranks. With a token mean inside each rank, a rank with few answer tokens
weighs as much as one with many, so the average differs from the token mean of the global batch; the
global normalisation scales each rank's token sum by world size / all ranks' tokens instead.
"""

from __future__ import annotations

import pytest
import torch

from paralm.lit_module import LOSS_NORMS, RuntimeConfig


def per_sample(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed token losses of 4 samples (differentiable in `weight`) and their unequal answer-token counts."""
    counts = torch.tensor([3, 9, 2, 14])
    sums = weight * torch.tensor([1.0, 2.0, 3.0, 4.0]) * counts
    return sums, counts


def ddp_gradient(norm: str) -> torch.Tensor:
    """Average over two simulated ranks (samples 0-1 and 2-3) of each rank's loss gradient."""
    grads = []
    for part in (slice(0, 2), slice(2, 4)):
        weight = torch.tensor(0.5, requires_grad=True)
        sums, counts = per_sample(weight)
        all_counts = counts.sum().float()
        loss = LOSS_NORMS[norm](sums[part], counts[part], lambda t, total=all_counts: total, 2)
        grads.append(torch.autograd.grad(loss, weight)[0])
    return torch.stack(grads).mean()


def one_process_gradient(norm: str) -> torch.Tensor:
    weight = torch.tensor(0.5, requires_grad=True)
    sums, counts = per_sample(weight)
    loss = LOSS_NORMS[norm](sums, counts, lambda t: t, 1)
    return torch.autograd.grad(loss, weight)[0]


def test_global_token_normalisation_makes_ddp_gradient_equal_one_process_gradient():
    assert torch.allclose(ddp_gradient("global_tokens"), one_process_gradient("global_tokens"), atol=0, rtol=1e-6)


def test_rank_token_mean_does_not_when_token_counts_differ():
    assert not torch.allclose(ddp_gradient("rank_tokens"), one_process_gradient("rank_tokens"), rtol=1e-3)


def test_sample_mean_is_exact_with_equal_samples_per_rank():
    assert torch.allclose(ddp_gradient("sample_mean"), one_process_gradient("sample_mean"), atol=0, rtol=1e-6)


def test_one_process_global_tokens_is_the_plain_token_mean():
    sums, counts = per_sample(torch.tensor(0.5))
    assert LOSS_NORMS["global_tokens"](sums, counts, lambda t: t, 1) == sums.sum() / counts.sum()


def test_unknown_loss_norm_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="loss_norm='token_mean' is not valid; choose one of: global_tokens"):
        RuntimeConfig(loss_norm="token_mean")
