"""Tests of paralm/eval: predictions, deterministic scorers, bootstrap statistics, judge validation, cross-rank gathering.

Shared settings (offline, one torch thread, the process guard) come from tests/conftest.py; the
helper kits in tests/ are importable from here.
"""
