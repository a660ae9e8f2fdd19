"""Shared test settings: offline everything, torch in one thread.

Tests live in folders that mirror the package (tests/model/, tests/data/, ...); the helper kits that
several folders use (`feedkit`, `shardkit`, `modelkit`, ...) sit here, on the import path of every test.
"""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PYTHONHASHSEED", "0")

# A few tests import helpers from a test module of another folder (the acceptance suite builds its tiny
# Whisper with tests/creation's builder). pytest puts a folder on the import path only when it collects a
# test there, so such an import worked in the full run and failed when one folder ran alone: every test
# folder is on the path from the start (test module names are unique across folders).
_TESTS = Path(__file__).resolve().parent
sys.path[1:1] = [str(d) for d in sorted(_TESTS.iterdir()) if d.is_dir() and (d / "conftest.py").exists()]

from process_guard import mark_test_run, no_process_left_behind  # noqa: E402,F401  (session fixture)

mark_test_run()  # processes started by the tests carry this run's tag: none may outlive the session


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Torch in one thread for every test module (as in dataloader workers), restored afterwards.

    Tiny models and small STFTs run fastest on one thread: on a busy 2-core machine intra-op threading
    makes small STFTs 10x slower, not faster, and only contends with other processes. Declared once here;
    a test that needs more threads sets them itself (the fixture restores the count when its module ends).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
