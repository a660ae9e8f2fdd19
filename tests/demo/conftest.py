"""Tests of data/demo and paralm demo: the embedded demo corpus, its tokenizer and the quick demo run.

Shared settings (offline, one torch thread, the process guard) come from tests/conftest.py; the
helper kits in tests/ are importable from here.
"""
