"""Shared test settings: offline everything, deterministic CPU threads."""

import os

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PYTHONHASHSEED", "0")

from process_guard import mark_test_run, no_process_left_behind  # noqa: E402,F401  (session fixture)

mark_test_run()  # processes started by the tests carry this run's tag: none may outlive the session
