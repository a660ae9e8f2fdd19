"""Tests of paralm/audio: log-mel features at the real clip length, and their parity with WhisperFeatureExtractor.

Shared settings (offline, one torch thread, the process guard) come from tests/conftest.py; the
helper kits in tests/ are importable from here.
"""
