"""Bootstrap CIs and agreement statistics, checked against hand computation and scipy."""

import numpy as np
import pytest
from scipy import stats as sps

from paralm.eval.stats import exact_agreement, pearson, quadratic_kappa, spearman
from paralm.stats.bootstrap import bootstrap_ci, mean_ci


def test_bootstrap_is_reproducible_with_a_seed_and_varies_without():
    x = np.arange(50, dtype=float)
    a, b = mean_ci(x, n_resamples=300, seed=7), mean_ci(x, n_resamples=300, seed=7)
    assert a == b
    assert mean_ci(x, n_resamples=300, seed=8) != a
    assert a.estimate == pytest.approx(24.5) and a.low < 24.5 < a.high


def test_bootstrap_interval_width_matches_the_standard_error():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, size=400)
    ci = mean_ci(x, n_resamples=2000, seed=1)
    se = x.std(ddof=1) / np.sqrt(len(x))
    assert (ci.high - ci.low) == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_bootstrap_resamples_within_groups_and_skips_undefined_values():
    constant, varied = np.zeros(10), np.arange(10.0)
    ci = bootstrap_ci([constant, varied], lambda a, b: pearson(a, b), n_resamples=50, seed=0)
    assert ci.estimate is None and ci.n_valid == 0 and ci.low is None and not ci.spans(0.0)
    sizes = []
    bootstrap_ci([np.ones(3), np.ones(7)], lambda a, b: sizes.append((len(a), len(b))) or 0.0, n_resamples=5)
    assert set(sizes) == {(3, 7)}


def test_bootstrap_rejects_bad_arguments():
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=1.5)
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci([np.array([])], np.mean)


def test_pearson_and_spearman_match_scipy_and_handle_constants():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=30), rng.normal(size=30)
    y[:5] = y[5]  # ties
    assert pearson(x, y) == pytest.approx(sps.pearsonr(x, y).statistic)
    assert spearman(x, y) == pytest.approx(sps.spearmanr(x, y).statistic)
    assert spearman([1, 2, 3, 4], [1, 4, 9, 100]) == pytest.approx(1.0)
    assert np.isnan(pearson([1, 1, 1], [1, 2, 3])) and np.isnan(spearman([1], [2]))


def test_quadratic_kappa_matches_hand_computation():
    a = np.array([0, 1, 2, 2])
    b = np.array([0, 2, 2, 1])
    # scale 0..2, w = (i-j)^2/4. Observed: (0,0) (1,2) (2,2) (2,1) each 1/4 -> sum w*O = (1/4 + 1/4) / 4 = 0.125
    # marginals a = b = [1/4, 1/4, 1/2]; sum w*E = 2 * (1/4 * 1/16 + 1 * 1/8 + 1/4 * 1/8) = 22/64
    assert quadratic_kappa(a, b, 0, 2) == pytest.approx(1 - 0.125 / (22 / 64))
    assert quadratic_kappa(a, a, 0, 2) == pytest.approx(1.0)
    assert quadratic_kappa(np.array([0, 5, 0, 5]), np.array([5, 0, 5, 0]), 0, 5) == pytest.approx(-1.0)
    assert np.isnan(quadratic_kappa(np.array([3, 3]), np.array([3, 3]), 0, 5))


def test_kappa_and_agreement_reject_bad_input():
    with pytest.raises(ValueError, match="outside"):
        quadratic_kappa(np.array([6]), np.array([1]), 0, 5)
    with pytest.raises(ValueError, match="equal"):
        exact_agreement(np.array([1, 2]), np.array([1]))
    assert exact_agreement(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 0])) == 0.5
