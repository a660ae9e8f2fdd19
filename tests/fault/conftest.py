"""Tests of paralm/fault and callbacks/: checkpoints, resume, preemption, non-finite guard, unsafe files, orphaned processes (real signals to real fits).

Shared settings (offline, one torch thread, the process guard) come from tests/conftest.py; the
helper kits in tests/ are importable from here.
"""
