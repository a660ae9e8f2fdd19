"""Tests of paralm/judge: the LLM judge: prompts, parsing, re-asks, summaries, resume, injection, the callback; never torch.

Shared settings (offline, one torch thread, the process guard) come from tests/conftest.py; the
helper kits in tests/ are importable from here.
"""
