"""Tests of paralm/runs: ablations (fit path, launchers, resume, controls, report, W&B) and sweeps.

Shared settings (offline, one torch thread, the process guard) come from tests/conftest.py; the
helper kits in tests/ are importable from here.
"""
