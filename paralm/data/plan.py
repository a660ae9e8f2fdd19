"""The seeded sample plan: which items each rank trains on, in which batches, in which order.

Why a plan instead of streaming: with the shard index in hand, the main process of every rank can
compute the same global plan from (seed, epoch) alone, take its own slice, and hand dataloader workers
nothing but positions. That makes the order independent of the worker count, makes batch counts equal
across ranks (DDP never waits on a rank that ran out of data), and makes resume exact: (epoch, position).

Planning works on `Pool`s (a source's name, kind, weight and per-item durations); an item is an index
into its pool. The loader maps items back to (IndexRow, qa index).

Training plan for one epoch:
  1. mixture draw: N slots, each slot's source drawn with the mixture probabilities; each source hands
     out its items in a seeded permutation (a fresh permutation each time it runs out), so an item
     repeats within an epoch only when its source is drawn more often than it has items;
  2. duration buckets: consecutive windows of about `window_batches` batches are sorted by duration
     and cut into batches (a fixed size, or a budget of padded audio seconds), so clips in a batch have
     similar lengths and padding stays small;
  3. the batch order is shuffled with the seed;
  4. batch j of the shuffled order goes to rank j mod world_size. Every rank gets exactly
     `batches_per_rank` batches, fixed for the run from epoch 0's plan: leftover batches at the end
     (fewer than world_size) are dropped, and if a later epoch (seconds budget) yields fewer batches,
     positions wrap around to the start of that epoch's own order (a few batches repeat).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


class PlanItem(NamedTuple):
    """One planned training/eval item: `item` indexes pool `source`; `is_pad` marks a filler copy."""

    source: int
    item: int
    is_pad: bool = False


@dataclass(frozen=True)
class Pool:
    """What the planner knows about one source.

    Args:
        name: source name (unique within a plan).
        kind: "general" or "implicit".
        weight: unnormalised mixture weight.
        durations: (n_items,) clip duration in seconds of each item.
    """

    name: str
    kind: str
    weight: float
    durations: np.ndarray

    def __len__(self) -> int:
        return len(self.durations)


@dataclass(frozen=True)
class BatchingConfig:
    """How items are grouped into batches.

    Args:
        batch_size: most items per batch (None: only the seconds budget limits it).
        max_batch_seconds: budget of padded audio seconds per batch (items x longest clip); None: fixed size.
        window_batches: duration sorting happens within windows of about this many batches; larger
            windows pad less, smaller ones keep the mixture better spread over the epoch.
    """

    batch_size: int | None = 8
    max_batch_seconds: float | None = None
    window_batches: int = 64

    def __post_init__(self) -> None:
        if self.batch_size is None and self.max_batch_seconds is None:
            raise ValueError("batching needs batch_size or max_batch_seconds (or both); both are None")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_batch_seconds is not None and self.max_batch_seconds <= 0:
            raise ValueError(f"max_batch_seconds must be > 0, got {self.max_batch_seconds}")
        if self.window_batches < 1:
            raise ValueError(f"window_batches must be >= 1, got {self.window_batches}")


def mixture_probabilities(pools: Sequence[Pool], implicit_ratio: float | None = None) -> np.ndarray:
    """Per-source draw probabilities: weights normalised, or split by kind when `implicit_ratio` is set.

    With `implicit_ratio=r`, implicit sources share probability r (in proportion to their weights) and
    general sources share 1 - r; that one scalar is what sweeps vary.
    """
    weights = np.array([p.weight for p in pools], dtype=np.float64)
    if len(pools) == 0:
        raise ValueError("a training plan needs at least one source; train_sources is empty")
    if (weights < 0).any():
        raise ValueError(
            f"source weights must be >= 0, got {dict(zip([p.name for p in pools], weights, strict=True))}"
        )
    if implicit_ratio is None:
        if weights.sum() <= 0:
            raise ValueError("all source weights are 0; at least one source needs a positive weight")
        return weights / weights.sum()
    if not 0.0 <= implicit_ratio <= 1.0:
        raise ValueError(f"implicit_ratio must be in [0, 1] or None, got {implicit_ratio}")
    probs = np.zeros(len(pools))
    for kind, mass in (("implicit", implicit_ratio), ("general", 1.0 - implicit_ratio)):
        group = weights * np.array([p.kind == kind for p in pools])
        if mass == 0:
            continue
        if group.sum() <= 0:
            names = [f"{p.name}({p.kind})" for p in pools]
            raise ValueError(
                f"implicit_ratio={implicit_ratio} gives {kind} sources probability {mass:g}, "
                f"but no {kind} source has a positive weight; sources: {names}"
            )
        probs += mass * group / group.sum()
    return probs


def draw_mixture(
    pools: Sequence[Pool], probs: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw `n` items: returns (source index (n,), item index (n,)) in draw order."""
    sources = rng.choice(len(pools), size=n, p=probs)
    items = np.empty(n, dtype=np.int64)
    for s, pool in enumerate(pools):
        slots = np.flatnonzero(sources == s)
        if len(slots) == 0:
            continue
        if len(pool) == 0:
            raise ValueError(f"source {pool.name!r} has probability {probs[s]:.3g} but no items")
        passes = -(-len(slots) // len(pool))
        stream = np.concatenate([rng.permutation(len(pool)) for _ in range(passes)])
        items[slots] = stream[: len(slots)]
    return sources, items


def split_sorted(order: np.ndarray, durations: np.ndarray, cfg: BatchingConfig) -> list[np.ndarray]:
    """Cut positions `order` (ascending duration) into batches by size and/or padded-seconds budget."""
    if cfg.max_batch_seconds is None:
        size = int(cfg.batch_size)
        return [order[i : i + size] for i in range(0, len(order), size)]
    batches, current = [], []
    for pos in order:
        longest = durations[pos]  # ascending order: the newest item is the batch maximum
        full = cfg.batch_size is not None and len(current) >= cfg.batch_size
        if current and (full or (len(current) + 1) * longest > cfg.max_batch_seconds):
            batches.append(np.array(current, dtype=np.int64))
            current = []
        current.append(int(pos))
    if current:
        batches.append(np.array(current, dtype=np.int64))
    return batches


def bucket_batches(durations: np.ndarray, cfg: BatchingConfig) -> list[np.ndarray]:
    """Batches of positions into `durations` (n,), sorted by duration within windows, in window order."""
    n = len(durations)
    if n == 0:
        return []
    per_batch = cfg.batch_size or 1
    if cfg.max_batch_seconds is not None:
        by_budget = max(1, int(cfg.max_batch_seconds / max(float(np.mean(durations)), 1e-6)))
        per_batch = min(per_batch, by_budget) if cfg.batch_size else by_budget
    window = max(1, cfg.window_batches * per_batch)
    batches: list[np.ndarray] = []
    for start in range(0, n, window):
        idx = np.arange(start, min(start + window, n))
        idx = idx[np.argsort(durations[idx], kind="stable")]
        batches.extend(split_sorted(idx, durations, cfg))
    return batches


@dataclass
class EpochPlan:
    """The global plan of one epoch (all ranks): batches in training order and per-source draw counts."""

    epoch: int
    batches: list[list[PlanItem]]
    source_counts: dict[str, int]

    def rank_batches(self, rank: int, world_size: int, count: int) -> list[list[PlanItem]]:
        """`count` batches for `rank`: global positions rank, rank + W, ... (wrapping if too few)."""
        if not self.batches:
            return []
        return [self.batches[(i * world_size + rank) % len(self.batches)] for i in range(count)]


class TrainPlanner:
    """Builds the seeded training plan of any epoch; identical on every rank and every run.

    Args:
        pools: the training sources.
        batching: batch formation.
        seed: plan seed (with the epoch, the only input to the randomness).
        samples_per_epoch: items drawn per epoch across all ranks (None: the total item count).
        implicit_ratio: probability mass of implicit sources (None: plain normalised weights).
    """

    def __init__(
        self,
        pools: Sequence[Pool],
        batching: BatchingConfig,
        seed: int = 0,
        samples_per_epoch: int | None = None,
        implicit_ratio: float | None = None,
    ) -> None:
        self.pools = list(pools)
        self.batching = batching
        self.seed = int(seed)
        self.probs = mixture_probabilities(self.pools, implicit_ratio)
        self.num_samples = int(samples_per_epoch or sum(len(p) for p in self.pools))
        if self.num_samples < 1:
            raise ValueError(f"samples_per_epoch must be >= 1, got {self.num_samples}")
        self._cache: dict[int, EpochPlan] = {}

    def epoch_plan(self, epoch: int) -> EpochPlan:
        if epoch not in self._cache:
            self._cache = {0: self._cache[0]} if 0 in self._cache else {}
            self._cache[epoch] = self._build(epoch)
        return self._cache[epoch]

    def _build(self, epoch: int) -> EpochPlan:
        rng = np.random.default_rng([self.seed, int(epoch)])
        sources, items = draw_mixture(self.pools, self.probs, self.num_samples, rng)
        offsets = np.cumsum([0] + [len(p) for p in self.pools])
        all_durations = np.concatenate([np.asarray(p.durations, dtype=np.float64) for p in self.pools])
        groups = bucket_batches(all_durations[offsets[sources] + items], self.batching)
        order = rng.permutation(len(groups))
        src, itm = sources.tolist(), items.tolist()
        batches = [[PlanItem(src[j], itm[j]) for j in groups[k].tolist()] for k in order]
        counts = np.bincount(sources, minlength=len(self.pools))
        return EpochPlan(epoch, batches, {p.name: int(c) for p, c in zip(self.pools, counts, strict=True)})

    def batches_per_rank(self, world_size: int) -> int:
        """Batches every rank runs per epoch, fixed for the run from epoch 0 (at least 1)."""
        return max(1, len(self.epoch_plan(0).batches) // world_size)

    def rank_plan(self, epoch: int, rank: int, world_size: int) -> list[list[PlanItem]]:
        return self.epoch_plan(epoch).rank_batches(rank, world_size, self.batches_per_rank(world_size))


def eval_plan(
    pools: Sequence[Pool], batching: BatchingConfig, rank: int, world_size: int
) -> list[list[PlanItem]]:
    """Every item of every pool exactly once across ranks, deterministic, batches sorted by duration.

    Batch j goes to rank j mod world_size, so ranks may differ by one batch (no duplicated samples).
    Each rank gets at least one batch when there are at least world_size items (large batches are
    halved until there are enough); with fewer items than ranks, a rank without an item gets one batch
    holding a copy of the first item flagged `is_pad`, which metrics must skip.
    """
    keys = [(float(d), s, i) for s, p in enumerate(pools) for i, d in enumerate(p.durations)]
    if not keys:
        return []
    keys.sort()
    flat = [PlanItem(s, i) for _, s, i in keys]
    durations = np.array([d for d, _, _ in keys])
    batches = [[flat[j] for j in b] for b in split_sorted(np.arange(len(flat)), durations, batching)]
    while len(batches) < world_size and any(len(b) > 1 for b in batches):
        big = max(range(len(batches)), key=lambda k: len(batches[k]))
        b = batches.pop(big)
        batches[big:big] = [b[: len(b) // 2], b[len(b) // 2 :]]
    mine = batches[rank::world_size]
    if not mine:
        mine = [[flat[0]._replace(is_pad=True)]]
    return mine
