"""Per-source loss across ranks that cannot hang when a source is missing from one rank's batches.

Why: logging `loss/<source>` only for the sources a rank happened to see makes ranks disagree on
which tensors to all-reduce, and the collective then waits forever. Here every source is registered
up front, every rank keeps the same (n_sources, 2) tensor of [loss sum, count], and `compute` runs
exactly one all-reduce on it; a source nobody saw reports nothing (count 0), not NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist


class SourceLossAggregator:
    """Sum and count of per-item losses for a fixed list of source names.

    Args:
        sources: every source name that may appear, in the same order on every rank.
        grow: register unknown names on first sight instead of refusing them; only for a single process
            (ranks could then disagree on the shape), e.g. a model fed by loaders without a datamodule.
    """

    def __init__(self, sources: Sequence[str], grow: bool = False) -> None:
        names = list(dict.fromkeys(sources))
        if not names and not grow:
            raise ValueError("SourceLossAggregator needs at least one source name")
        self.sources = names
        self.grow = grow
        self._index = {n: i for i, n in enumerate(names)}
        self._state = torch.zeros(len(names), 2, dtype=torch.float64)  # (S, [sum, count])

    def update(
        self, sources: Sequence[str], losses: torch.Tensor, weights: torch.Tensor | None = None
    ) -> None:
        """Add per-item losses (B,) for items from `sources` (B names).

        With `weights` (B,) (e.g. answer-token counts) `losses` are per-item sums and the result is a
        weighted mean; without, every item counts once. Unknown names raise (they would otherwise be
        missing from the all-reduced tensor on some ranks).
        """
        losses = losses.detach().reshape(-1)
        if len(sources) != losses.numel():
            raise ValueError(f"got {len(sources)} source names for {losses.numel()} losses")
        unknown = list(dict.fromkeys(s for s in sources if s not in self._index))
        if unknown and not self.grow:
            raise ValueError(f"unknown source(s) {sorted(unknown)}; registered: {self.sources}")
        if unknown:
            self._register(unknown)
        idx = torch.tensor([self._index[s] for s in sources], dtype=torch.long)
        w = torch.ones_like(losses) if weights is None else weights.detach().reshape(-1).to(losses)
        state = self._state
        if state.device != losses.device:
            state = self._state = state.to(losses.device)
        idx = idx.to(losses.device)
        state[:, 0].index_add_(0, idx, losses.to(state.dtype))
        state[:, 1].index_add_(0, idx, w.to(state.dtype))

    def _register(self, names: list[str]) -> None:
        for name in names:
            self._index[name] = len(self.sources)
            self.sources.append(name)
        extra = torch.zeros(len(names), 2, dtype=self._state.dtype, device=self._state.device)
        self._state = torch.cat([self._state, extra])

    def compute(self, sync: bool = True) -> dict[str, float]:
        """Mean loss per source over all ranks (one all-reduce; all ranks must call it). Unseen: omitted."""
        total = self._state.clone()
        if sync and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            total = self._reduce(total)
        return {n: float(total[i, 0] / total[i, 1]) for i, n in enumerate(self.sources) if total[i, 1] > 0}

    @staticmethod
    def _reduce(total: torch.Tensor) -> torch.Tensor:
        if dist.get_backend() == "nccl" and total.device.type != "cuda":
            total = total.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total.cpu()

    def counts(self) -> dict[str, float]:
        """This rank's item count (or weight sum) per source."""
        return {n: float(self._state[i, 1]) for i, n in enumerate(self.sources)}

    def reset(self) -> None:
        self._state = torch.zeros_like(self._state)
