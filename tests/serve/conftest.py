"""Tests of paralm/ask.py, paralm/serve, paralm/eval/endpoint.py: asking a trained model, serving it OpenAI-style, evaluating any such endpoint.

Shared settings (offline, one torch thread, the process guard) come from tests/conftest.py; the
helper kits in tests/ are importable from here.
"""
