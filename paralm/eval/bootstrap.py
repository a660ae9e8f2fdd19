"""Old import path of `paralm.stats.bootstrap` (moved so that the judge need not import paralm.eval)."""

from paralm.stats.bootstrap import BootstrapResult, bootstrap_ci, mean_ci, percentile_ci

__all__ = ["BootstrapResult", "bootstrap_ci", "mean_ci", "percentile_ci"]
