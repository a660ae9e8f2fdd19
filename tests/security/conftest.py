"""Tests of paralm/secret_guard.py and config parsing: keys never printed, hostile configs refused.

Shared settings (offline, one torch thread, the process guard) come from tests/conftest.py; the
helper kits in tests/ are importable from here.
"""
