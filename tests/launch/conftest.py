"""Tests of paralm/launch.py: DDP, FSDP and their environment on CPU with gloo; loss normalisation across ranks.

Shared settings (offline, one torch thread, the process guard) come from tests/conftest.py; the
helper kits in tests/ are importable from here.
"""
