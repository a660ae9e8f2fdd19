"""Ablation statistics: per-item score matrices (seeds x items) and a two-level paired bootstrap.

Why two levels: an ablation's noise has two sources, the training seed and the test items. Each
resample draws seeds with replacement and items with replacement and applies the *same* draw to every
row being compared (seeds are matched by value, items by id), so a difference between rows keeps its
pairing and its interval reflects both sources. Point estimates are plain means over seeds and items,
i.e. the mean of the per-seed means written in each result folder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from paralm.stats.bootstrap import BootstrapResult, percentile_ci


class ScoreMatrix:
    """Per-item values of one metric for one row and condition, by seed.

    Args:
        by_seed: seed -> {item_id: value}.
    """

    def __init__(self, by_seed: dict[int, dict[str, float]]) -> None:
        self.by_seed = by_seed

    @property
    def seeds(self) -> list[int]:
        return sorted(self.by_seed)

    def items(self) -> set[str]:
        """Items present for every seed."""
        sets = [set(v) for v in self.by_seed.values()]
        return set.intersection(*sets) if sets else set()

    def array(self, seeds: Sequence[int], items: Sequence[str]) -> np.ndarray:
        """(S, I) values for the given seeds and items."""
        return np.array([[self.by_seed[s][i] for i in items] for s in seeds], dtype=float)


def aligned(mats: Sequence[ScoreMatrix]) -> tuple[list[int], list[str], list[np.ndarray]]:
    """Common seeds and items of several matrices and their (S, I) arrays in the same order."""
    seeds = sorted(set.intersection(*(set(m.seeds) for m in mats)))
    items = sorted(set.intersection(*(m.items() for m in mats)))
    return seeds, items, [m.array(seeds, items) for m in mats]


def paired_bootstrap(arrays: Sequence[np.ndarray], statistic: Callable[..., float], n_resamples: int = 1000,
                     confidence: float = 0.95, seed: int = 0) -> BootstrapResult:
    """Percentile CI of `statistic(*arrays)` resampling seeds (rows) and items (columns) jointly."""
    if not arrays or arrays[0].size == 0:
        return BootstrapResult(None, None, None, confidence, n_resamples, 0)
    n_seeds, n_items = arrays[0].shape

    def draw(rng: np.random.Generator) -> list[np.ndarray]:
        si = rng.integers(0, n_seeds, n_seeds)
        ii = rng.integers(0, n_items, n_items)
        return [a[np.ix_(si, ii)] for a in arrays]

    return percentile_ci(arrays, statistic, draw, n_resamples, confidence, seed)


def mean_of(a: np.ndarray) -> float:
    return float(a.mean())


def difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(a.mean() - b.mean())


def relative_gain_pct(a: np.ndarray, b: np.ndarray) -> float:
    """(a - b) / b in percent, the paper's "+x %"; undefined (NaN) when b's mean is 0."""
    base = float(b.mean())
    return float("nan") if base == 0 else 100.0 * (float(a.mean()) - base) / base
