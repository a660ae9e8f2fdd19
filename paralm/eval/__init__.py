"""Evaluation: the predictions format, deterministic scorers, bootstrap CIs and judge validation.

predictions.py, jsonl.py, labels.py, bootstrap.py and stats.py never import torch (the judge uses
them); scorers.py uses torchmetrics.
"""
