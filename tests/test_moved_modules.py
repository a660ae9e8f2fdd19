"""Public names that moved keep their old import path: configs, checkpoints and users' code name them."""

import importlib

import pytest

MOVED = [
    # (old module, new module, names)
    ("paralm.eval.jsonl", "paralm.formats.jsonl",
     ["JsonlAppender", "read_jsonl", "write_jsonl_atomic", "write_text_atomic"]),
    ("paralm.eval.predictions", "paralm.formats.predictions",
     ["LABEL_KINDS", "QUESTION_TYPES", "PredictionRow", "read_predictions", "write_predictions"]),
    ("paralm.eval.bootstrap", "paralm.stats.bootstrap", ["BootstrapResult", "bootstrap_ci", "mean_ci", "percentile_ci"]),
]


@pytest.mark.parametrize(("old", "new", "names"), MOVED, ids=[m[0] for m in MOVED])
def test_old_import_path_gives_the_same_objects(old, new, names):
    old_mod, new_mod = importlib.import_module(old), importlib.import_module(new)
    for name in names:
        assert getattr(old_mod, name) is getattr(new_mod, name), f"{old}.{name}"
