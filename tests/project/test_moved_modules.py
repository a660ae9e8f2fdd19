"""Public names that moved keep their old import path: configs, checkpoints and users' code name them."""

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from paralm.moved_modules import MOVED as MOVED_TABLE

MOVED = sorted(MOVED_TABLE.items())  # (old module path, new module path), from the one table of moves


@pytest.mark.parametrize(("old", "new"), MOVED, ids=[m[0] for m in MOVED])
def test_old_import_path_is_the_moved_module(old, new):
    """The old name is the module itself: its names resolve, and a patch through either path is seen by both."""
    old_mod, new_mod = importlib.import_module(old), importlib.import_module(new)
    assert old_mod is new_mod
    public = [n for n in dir(new_mod) if not n.startswith("_")]
    assert public and all(getattr(old_mod, n) is getattr(new_mod, n) for n in public)


def test_from_import_through_the_old_path_gives_the_moved_objects():
    from paralm.checkpointing import AtomicCheckpointIO, load_verified
    from paralm.eval.bootstrap import mean_ci
    from paralm.eval.jsonl import JsonlAppender
    from paralm.eval.predictions import PredictionRow

    from paralm.fault import checkpoint_io
    from paralm.formats import jsonl, predictions
    from paralm.stats import bootstrap

    assert (AtomicCheckpointIO, load_verified) == (checkpoint_io.AtomicCheckpointIO, checkpoint_io.load_verified)
    assert (mean_ci, JsonlAppender, PredictionRow) == (bootstrap.mean_ci, jsonl.JsonlAppender, predictions.PredictionRow)


def test_from_import_through_an_old_prefixed_path_gives_the_subpackage_objects():
    """One old path of each new subpackage (runs/ablate/, runs/sweep/, creation/generate/)."""
    from paralm.creation.gen_config import GenerateConfig
    from paralm.creation.qa_template import template_pairs
    from paralm.runs.ablate_config import AblationConfig
    from paralm.runs.sweep_spec import SweepSpec

    from paralm.creation.generate import config, template
    from paralm.runs.ablate import config as ablate_config
    from paralm.runs.sweep import spec

    assert (GenerateConfig, template_pairs) == (config.GenerateConfig, template.template_pairs)
    assert (AblationConfig, SweepSpec) == (ablate_config.AblationConfig, spec.SweepSpec)


def test_a_patch_through_the_old_path_reaches_the_code_that_uses_the_new_one(monkeypatch):
    import paralm.runs.ablate.run as new

    def patched(*args, **kwargs):
        return []

    monkeypatch.setattr("paralm.runs.ablate_run.train_and_evaluate", patched)
    assert new.train_and_evaluate is patched


@pytest.mark.parametrize(("old", "new"), MOVED, ids=[m[0] for m in MOVED])
def test_an_old_name_does_not_rename_the_moved_module(old, new):
    """Imported through its old name first or not, the module keeps its own __name__ and __spec__."""
    module = importlib.import_module(old)
    assert (module.__name__, module.__spec__.name) == (new, new)
    assert importlib.util.find_spec(new).origin == module.__spec__.origin


def test_the_command_names_still_import_from_the_package():
    """paralm.runs.ablate, paralm.runs.sweep and paralm.creation.generate were the command modules."""
    from paralm.creation.generate import generate, main
    from paralm.creation.generate.command import generate as command_generate
    from paralm.creation.generate.command import main as command_main
    from paralm.runs.ablate import run_ablation
    from paralm.runs.ablate.command import run_ablation as command_run_ablation
    from paralm.runs.sweep import SweepDriver
    from paralm.runs.sweep.command import SweepDriver as CommandSweepDriver

    assert (generate, main) == (command_generate, command_main)
    assert (run_ablation, SweepDriver) == (command_run_ablation, CommandSweepDriver)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        importlib.import_module("paralm.runs.sweep").not_a_name  # noqa: B018


ROOT = Path(__file__).resolve().parents[2]
PRE_MOVE = ROOT / "tests" / "fixtures" / "pre_move"


def test_config_saved_before_the_move_builds_the_checkpoint_plugin():
    """A saved config.yaml names paralm.checkpointing.AtomicCheckpointIO; it still builds that plugin."""
    from jsonargparse import ArgumentParser
    from lightning.pytorch.plugins.io import CheckpointIO

    from paralm.fault.checkpoint_io import AtomicCheckpointIO

    parser = ArgumentParser()
    parser.add_argument("--trainer.plugins", type=list[CheckpointIO])
    cfg = parser.parse_path(str(PRE_MOVE / "config.yaml"))
    assert cfg.trainer.plugins[0].class_path == "paralm.checkpointing.AtomicCheckpointIO"
    plugins = parser.instantiate_classes(cfg).trainer.plugins
    assert len(plugins) == 1 and type(plugins[0]) is AtomicCheckpointIO


def test_checkpoint_written_before_the_move_loads_through_both_paths():
    import paralm.checkpointing as old
    import torch

    import paralm.fault.checkpoint_io as new

    for module in (old, new):
        state = module.load_verified(PRE_MOVE / "last.ckpt")
        assert torch.equal(state["state_dict"]["net.projector.weight"], torch.arange(6.0).reshape(2, 3))
        assert module.checkpoint_step(PRE_MOVE / "last.ckpt") == 7
    state = new.AtomicCheckpointIO().load_checkpoint(PRE_MOVE / "last.ckpt")
    assert state["global_step"] == 7


def test_no_module_in_paralm_shadows_the_standard_library_secrets():
    """Run as a file, paralm/launch.py has paralm/ on sys.path: nothing there may be called secrets."""
    assert not (ROOT / "paralm" / "secrets.py").exists() and not (ROOT / "paralm" / "secrets").exists()
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import secrets, paralm.secrets; "
            "print(secrets.token_hex.__module__, paralm.secrets.mask_secrets('sk-' + 'a' * 20))")
    done = subprocess.run([sys.executable, "-c", code, str(ROOT / "paralm")], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["secrets", "***"]


def test_lightning_callbacks_live_in_the_callbacks_package():
    import callbacks
    from paralm.runs.sweep import CALLBACK

    assert callbacks.NonFiniteGuard.__module__ == "callbacks.nonfinite"
    assert CALLBACK == "callbacks.sweep_trial.SweepTrialCallback"
    assert importlib.import_module("paralm.runs.sweep_callback").SweepTrialCallback.__module__ == "callbacks.sweep_trial"


def test_old_fake_server_command_still_serves():
    """`python -m paralm.api.serve_fake` (the old module) starts the moved fake server and prints its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "paralm.api.serve_fake", "--latency-s", "0"], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline().strip()
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()
    assert first.startswith("http://127.0.0.1:") and first.endswith("/v1")


def test_no_prefixed_module_or_shim_file_remains():
    """The prefixed siblings became subpackages, and an old path is a row of paralm/moved_modules.py, not a file."""
    prefixed = {"runs": ("ablate_", "sweep_"), "creation": ("gen_", "qa_")}
    left = sorted(f"{folder}/{p.name}" for folder, prefixes in prefixed.items()
                  for p in (ROOT / "paralm" / folder).iterdir() if p.name.startswith(prefixes))
    assert left == []
    shims = [old for old in MOVED_TABLE if (ROOT / (old.replace(".", "/") + ".py")).exists()
             or (ROOT / old.replace(".", "/")).is_dir()]
    assert shims == []


def test_a_helper_import_does_not_load_the_command_and_python_m_sweep_still_runs():
    code = ("import sys, paralm.creation.generate.config, paralm.creation.gen_inputs; "
            "print('paralm.creation.generate.command' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert (done.returncode, done.stdout.strip()) == (0, "False"), done.stderr
    done = subprocess.run([sys.executable, "-m", "paralm.runs.sweep", "--help"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ") and "--count" in done.stdout
