"""Evaluation: deterministic scorers, correlation statistics and judge validation.

The predictions and JSONL formats live in paralm.formats and the bootstrap in paralm.stats (the judge
imports those, never paralm.eval); jsonl.py, predictions.py and bootstrap.py here are their old import
paths. labels.py and stats.py never import torch; scorers.py uses torchmetrics.
"""
