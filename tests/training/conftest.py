"""Tests of paralm/lit_module.py: the LightningModule: losses, per-source metrics, module modes during fit.

Shared settings (offline, one torch thread, the process guard) come from tests/conftest.py; the
helper kits in tests/ are importable from here.
"""
