"""Tests of paralm/creation: making data: VAD, transcription, annotators, condensing, QA generation (template and LLM) and its faults and resume.

Shared settings (offline, one torch thread, the process guard) come from tests/conftest.py; the
helper kits in tests/ are importable from here.
"""
