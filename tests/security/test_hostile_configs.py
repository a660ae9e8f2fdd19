"""Hostile training configs never execute anything: YAML tags, class paths to process launchers,
`${oc.env:...}` interpolation and a plugins list that drops the atomic checkpoint plugin are refused.

Each config is run through `paralm.cli.main` (the console script's function) in this process: the
refusals happen while the config is parsed or the trainer is built, before any step, so one import
of Lightning serves every case. Each payload would create a marker file if it ever ran.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from paralm.cli import main
from paralm.fault.exits import EXIT_USER_ERROR

REPO = Path(__file__).resolve().parents[2]
DEBUG = str(REPO / "experiments" / "debug_cpu.yaml")


def run_fit(tmp_path: Path, overlay: str, monkeypatch) -> int:
    """`paralm fit` on the debug config plus `overlay`, in a scratch folder; returns the exit status."""
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("PARALM_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr("sys.argv", ["paralm"])
    cfg = tmp_path / "attack.yaml"
    cfg.write_text(overlay)
    try:
        return main(["fit", "--config", DEBUG, "--config", str(cfg), "--trainer.max_steps=1"])
    except SystemExit as stop:
        return stop.code


@pytest.mark.parametrize("attack", [
    # a YAML tag that would call os.system while the file is loaded
    "seed_everything: !!python/object/apply:os.system ['touch {marker}']\n",
    # a callback whose class_path is a process launcher
    "trainer:\n  callbacks:\n    - class_path: subprocess.Popen\n      init_args: {{args: [touch, '{marker}']}}\n",
    # a logger whose class_path is os.system
    "trainer:\n  logger:\n    class_path: os.system\n    init_args: {{command: 'touch {marker}'}}\n",
], ids=["yaml_python_tag", "class_path_popen", "class_path_os_system"])
def test_configs_that_would_run_a_command_are_refused_and_run_nothing(tmp_path, monkeypatch, capsys, attack):
    marker = tmp_path / "PWNED"
    code = run_fit(tmp_path, attack.format(marker=marker), monkeypatch)
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR, err[-2000:]
    assert not marker.exists()
    assert "paralm fit: error:" in err.strip().splitlines()[-1]


def test_oc_env_interpolation_is_not_resolved_in_a_data_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PARALM_TEST_SHARDS", str(REPO / "data" / "demo" / "shards" / "general"))
    overlay = ("data:\n  train_sources:\n"
               "    - {name: general, path: '${oc.env:PARALM_TEST_SHARDS}', kind: general, split: train}\n")
    code = run_fit(tmp_path, overlay, monkeypatch)
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR, err[-2000:]
    assert "${oc.env:PARALM_TEST_SHARDS}" in err.strip().splitlines()[-1]
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.ckpt"))


def test_a_plugins_list_without_the_atomic_checkpoint_plugin_is_refused(tmp_path, monkeypatch, capsys):
    overlay = "trainer:\n  plugins:\n    - class_path: lightning.pytorch.plugins.TorchCheckpointIO\n"
    code = run_fit(tmp_path, overlay, monkeypatch)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == EXIT_USER_ERROR
    assert "trainer.plugins must include paralm.checkpointing.AtomicCheckpointIO" in last
    assert not list(tmp_path.rglob("*.ckpt"))
