"""Tests of paralm/model: encoder, projector, LLM, export, converters and the real pretrained models (SmolLM2, Whisper tiny.en).

Shared settings (offline, one torch thread, the process guard) come from tests/conftest.py; the
helper kits in tests/ are importable from here.
"""
