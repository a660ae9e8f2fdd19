"""Tests of paralm/api: the OpenAI-compatible client: retries, Retry-After, budgets, cache, the fake server, benchmarks; never torch.

Shared settings (offline, one torch thread, the process guard) come from tests/conftest.py; the
helper kits in tests/ are importable from here.
"""
