"""Tests of paralm/data: shards, indexes, packing, foreign shards, the planned loader, collation, resume, the encoder-state store, hostile shards and manifests.

Shared settings (offline, one torch thread, the process guard) come from tests/conftest.py; the
helper kits in tests/ are importable from here.
"""
