"""Per-source loss as a `torchmetrics.Metric`: a fixed-shape [sum, count] per source, summed across ranks.

Why a fixed shape: logging `loss_<source>` only for the sources a rank happened to see makes ranks
disagree on which tensors to reduce, and the collective then waits forever. Every source is registered
up front, every rank holds the same (n_sources,) sum and count states, and torchmetrics' sum reduction
combines them in `compute`; a source nobody saw reports nothing (count 0), not NaN. One instance per
stage (train / val / test), so that one stage's batches never reach another's figures: `StageSourceLosses`
holds them for a LightningModule, which then only feeds it each step and logs it at each epoch end.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torchmetrics import Metric


class SourceLossAggregator(Metric):
    """Sum and count of per-item losses for a list of source names.

    Args:
        sources: every source name that may appear, in the same order on every rank.
        grow: register unknown names on first sight instead of refusing them; only for a single process
            (ranks could then disagree on the shape), e.g. a model fed by loaders without a datamodule.
    """

    full_state_update = False

    def __init__(self, sources: Sequence[str], grow: bool = False) -> None:
        super().__init__()
        names = list(dict.fromkeys(sources))
        if not names and not grow:
            raise ValueError("SourceLossAggregator needs at least one source name")
        self.sources = names
        self.grow = grow
        self._index = {n: i for i, n in enumerate(names)}
        for state in ("sums", "counts"):
            self.add_state(state, default=torch.zeros(len(names), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, sources: Sequence[str], losses: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        """Add per-item losses (B,) for items from `sources` (B names).

        With `weights` (B,) (e.g. answer-token counts) `losses` are per-item sums and the result is a
        weighted mean; without, every item counts once. Unknown names raise unless `grow` (they would
        otherwise be missing from the reduced states on some ranks).
        """
        losses = losses.detach().reshape(-1)
        if len(sources) != losses.numel():
            raise ValueError(f"got {len(sources)} source names for {losses.numel()} losses")
        unknown = list(dict.fromkeys(s for s in sources if s not in self._index))
        if unknown and not self.grow:
            raise ValueError(f"unknown source(s) {sorted(unknown)}; registered: {self.sources}")
        self._register(unknown)
        device = self.sums.device
        idx = torch.tensor([self._index[s] for s in sources], dtype=torch.long, device=device)
        w = torch.ones_like(losses) if weights is None else weights.detach().reshape(-1)
        self.sums.index_add_(0, idx, losses.to(device, torch.float64))
        self.counts.index_add_(0, idx, w.to(device, torch.float64))

    def _register(self, names: list[str]) -> None:
        """Grow both states and their reset defaults (torchmetrics resets to `_defaults`)."""
        if not names:
            return
        for name in names:
            self._index[name] = len(self.sources)
            self.sources.append(name)
        for state in ("sums", "counts"):
            extra = torch.zeros(len(names), dtype=torch.float64)
            setattr(self, state, torch.cat([getattr(self, state), extra.to(getattr(self, state).device)]))
            self._defaults[state] = torch.cat([self._defaults[state], extra])

    def compute(self) -> dict[str, float]:
        """Mean loss per source over all ranks (every rank must call it when several run). Unseen: omitted."""
        return {n: float(self.sums[i] / self.counts[i]) for i, n in enumerate(self.sources) if self.counts[i] > 0}

    def _wrap_compute(self, compute):
        """torchmetrics' wrapper (sync + cache) without its warning for a rank that saw no batch of this
        stage: that rank must still join the reduction, which is the point of the fixed shape."""
        wrapped = super()._wrap_compute(compute)

        def quiet(*args, **kwargs):
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r".*was called before the ``update`` method")
                return wrapped(*args, **kwargs)

        return quiet

    def counts_by_source(self) -> dict[str, float]:
        """This rank's item count (or weight sum) per source."""
        return {n: float(self.counts[i]) for i, n in enumerate(self.sources)}


class StageSourceLosses:
    """`<stage>/loss_<source>` for every stage: one `SourceLossAggregator` per stage, made at first use.

    Names: the datamodule's `source_names` (the same list on every rank, so every rank reduces the same
    shape). A single process also registers names as they come (plain loaders, no datamodule); several
    ranks without names log none, since their shapes could disagree and the reduction would hang.

    Args:
        names: every source name that may appear (empty: none known).
        world_size: processes that reduce together.
        device: where the sums live (the collective backend's device; None: the first update's).
    """

    def __init__(self, names: Sequence[str] = (), world_size: int = 1, device: torch.device | str | None = None):
        self.names = list(names)
        self.world_size = int(world_size)
        self.device = device
        self.by_stage: dict[str, SourceLossAggregator] = {}

    @classmethod
    def for_trainer(cls, trainer) -> StageSourceLosses:
        """Empty sums for a run of `trainer`: its datamodule's names, world size and root device."""
        names = getattr(trainer.datamodule, "source_names", None) or []
        return cls(names, trainer.world_size, trainer.strategy.root_device)

    def aggregator(self, stage: str) -> SourceLossAggregator | None:
        """The stage's sums (created now if new), or None when several ranks know no names."""
        if stage not in self.by_stage:
            single = self.world_size == 1
            if not (single or self.names):
                return None
            self.by_stage[stage] = SourceLossAggregator(self.names, grow=single).to(self.device or "cpu")
        return self.by_stage[stage]

    def update(self, stage: str, sources: Sequence[str], sums: torch.Tensor, counts: torch.Tensor) -> None:
        """Add one batch: per-item loss sums (B,) and their answer-token counts (B,) (0 for filler items)."""
        if self.device is None:
            self.device = sums.device
        aggregator = self.aggregator(stage)
        if aggregator is not None:
            aggregator.update(sources, sums, weights=counts)

    def epoch_end(self, stage: str) -> dict[str, float]:
        """{"<stage>/loss_<source>": token mean over all ranks} for sources seen, then start over.

        Every rank must call it (a rank that saw no batch of the stage still joins the reduction)."""
        aggregator = self.aggregator(stage)
        if aggregator is None:
            return {}
        values = {f"{stage}/loss_{name}": value for name, value in aggregator.compute().items()}
        aggregator.reset()
        return values
