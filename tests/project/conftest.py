"""Tests of the whole project: structure rules: import contracts, moved modules, one flag name per concept, atomic writers, every config parses.

Shared settings (offline, one torch thread, the process guard) come from tests/conftest.py; the
helper kits in tests/ are importable from here.
"""
