"""Tests of paralm/perf and benchmarks/: FLOP counts, telemetry, benchmark smoke runs and the GPU script on CPU.

Shared settings (offline, one torch thread, the process guard) come from tests/conftest.py; the
helper kits in tests/ are importable from here.
"""
