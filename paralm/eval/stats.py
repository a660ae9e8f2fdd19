"""Correlation and agreement statistics for judge validation.

Small, NaN-returning versions: inside a bootstrap many resamples are constant (every system equally
accurate, a judge that rated all items alike), and an undefined value must become NaN for the
bootstrap to skip and count, not a warning or an exception. Never imports torch.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r; NaN with fewer than 2 points or when either side is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"pearson needs equal-length inputs, got {x.shape} and {y.shape}")
    if len(x) < 2:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    denom = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    if denom == 0 or not np.isfinite(denom):
        return float("nan")
    return float(np.clip((dx * dy).sum() / denom, -1.0, 1.0))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rho: Pearson r of average ranks (ties share their mean rank)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2:
        return float("nan")
    return pearson(rankdata(x), rankdata(y))


def quadratic_kappa(a: np.ndarray, b: np.ndarray, min_rating: int, max_rating: int) -> float:
    """Cohen's kappa with quadratic weights between two raters on an integer scale.

    kappa = 1 - sum(w * O) / sum(w * E), w_ij = (i - j)^2 / (k - 1)^2, O the observed joint
    distribution and E the product of the two marginals. NaN when E puts all mass on the diagonal
    (both raters constant on the same value), where chance agreement is already perfect.
    """
    a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    if a.shape != b.shape or len(a) == 0:
        raise ValueError(f"kappa needs two equal, non-empty rating lists, got {a.shape} and {b.shape}")
    k = max_rating - min_rating + 1
    if k < 2:
        raise ValueError(f"kappa needs at least two rating levels, got {min_rating}..{max_rating}")
    if a.min() < min_rating or b.min() < min_rating or a.max() > max_rating or b.max() > max_rating:
        raise ValueError(f"ratings outside {min_rating}..{max_rating}")
    observed = np.zeros((k, k))
    np.add.at(observed, (a - min_rating, b - min_rating), 1.0)
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    levels = np.arange(k)
    weights = (levels[:, None] - levels[None, :]) ** 2 / (k - 1) ** 2
    chance = (weights * expected).sum()
    if chance == 0:
        return float("nan")
    return float(1.0 - (weights * observed).sum() / chance)


def exact_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of items both raters rated identically."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or len(a) == 0:
        raise ValueError(f"agreement needs two equal, non-empty rating lists, got {a.shape} and {b.shape}")
    return float((a == b).mean())
