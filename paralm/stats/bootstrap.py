"""Seeded percentile-bootstrap confidence intervals, reused by the judge summary, judge validation and
the ablation report.

Data come as groups (one per system, run or condition). Each resample draws items with replacement
*within* every group independently, keeping group sizes, so a statistic that compares groups (a
correlation across systems, a relative gain of one row over another) sees the sampling noise of
every group at once. A group is a 1-D array of item values or a 2-D array with one row per item
(paired values such as (rating, correct) stay together). The same seed gives the same interval.
Never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class BootstrapResult:
    """A point estimate and its percentile interval.

    Args:
        estimate: the statistic on the original data (None when undefined, e.g. constant input).
        low: lower bound of the interval (None when no resample gave a defined value).
        high: upper bound of the interval.
        confidence: interval coverage, e.g. 0.95.
        n_resamples: resamples drawn.
        n_valid: resamples whose statistic was defined (finite); the interval uses only these.
    """

    estimate: float | None
    low: float | None
    high: float | None
    confidence: float
    n_resamples: int
    n_valid: int

    def as_dict(self) -> dict:
        return asdict(self)

    def spans(self, value: float) -> bool:
        """Whether the interval contains `value` (False when the interval is undefined)."""
        return self.low is not None and self.high is not None and self.low <= value <= self.high


def _finite(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def bootstrap_ci(
    groups: Sequence[np.ndarray] | np.ndarray,
    statistic: Callable[..., float],
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Percentile CI of `statistic(*groups)` under resampling of items within each group.

    `groups` may be a single array (treated as one group). `statistic` receives one array per group
    and returns a float; NaN or inf marks an undefined value (such resamples are skipped and counted).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if isinstance(groups, np.ndarray):
        groups = [groups]
    arrays = [np.asarray(g) for g in groups]
    empty = [i for i, a in enumerate(arrays) if len(a) == 0]
    if empty:
        raise ValueError(f"bootstrap groups {empty} are empty; every group needs at least one item")
    return percentile_ci(arrays, statistic, lambda rng: [a[rng.integers(0, len(a), size=len(a))] for a in arrays],
                         n_resamples, confidence, seed)


def percentile_ci(arrays: Sequence[np.ndarray], statistic: Callable[..., float],
                  draw: Callable[[np.random.Generator], Sequence[np.ndarray]], n_resamples: int,
                  confidence: float, seed: int) -> BootstrapResult:
    """The shared percentile-bootstrap loop: `draw(rng)` returns one resample of `arrays`.

    Undefined (NaN / inf) resampled statistics are skipped and counted in `n_valid`.
    """
    rng = np.random.default_rng(seed)
    estimate = _finite(statistic(*arrays))
    values = []
    for _ in range(n_resamples):
        value = _finite(statistic(*draw(rng)))
        if value is not None:
            values.append(value)
    if not values:
        return BootstrapResult(estimate, None, None, confidence, n_resamples, 0)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return BootstrapResult(estimate, float(low), float(high), confidence, n_resamples, len(values))


def mean_ci(values: Sequence[float], n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> BootstrapResult:
    """CI of a mean (the common case: a judge score over items)."""
    return bootstrap_ci([np.asarray(values, dtype=float)], np.mean, n_resamples, confidence, seed)
