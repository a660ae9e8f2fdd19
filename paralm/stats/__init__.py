"""Torch-free statistics shared by the judge summary, judge validation and the ablation report
(bootstrap: seeded percentile-bootstrap confidence intervals)."""
