"""The public command line: `paralm fit --config experiments/debug_cpu.yaml` trains and checkpoints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def run_paralm(args: list[str], cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "paralm.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_fit_on_debug_config_exits_zero_and_writes_a_loadable_checkpoint(tmp_path):
    ckpt_dir = tmp_path / "ckpt"
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(
        "trainer:\n  max_steps: 4\n  val_check_interval: 2\n  default_root_dir: " + str(tmp_path) + "\n"
        "  callbacks:\n    - class_path: lightning.pytorch.callbacks.ModelCheckpoint\n"
        f"      init_args: {{dirpath: {ckpt_dir}, every_n_train_steps: 2, save_top_k: -1}}\n")
    proc = run_paralm(["fit", "--config", "experiments/debug_cpu.yaml", "--config", str(overlay)], cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpts = sorted(ckpt_dir.glob("epoch=*.ckpt"))
    assert [p.name for p in ckpts] == ["epoch=0-step=2.ckpt", "epoch=0-step=4.ckpt"]
    state = torch.load(ckpts[-1], weights_only=True)
    assert state["global_step"] == 4 and state["state_dict"]
    assert all((p.parent / (p.name + ".ok")).exists() for p in ckpts)


def test_unknown_command_names_the_valid_ones(tmp_path):
    proc = run_paralm(["frobnicate"], cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "unknown command" in proc.stderr and "fit" in proc.stderr and "data pack" in proc.stderr


def test_fit_help_documents_options(tmp_path):
    proc = run_paralm(["fit", "--help"], cwd=tmp_path, timeout=120)
    assert proc.returncode == 0
    for text in ("--model.model.projector.stack", "frames merged into one audio token",
                 "--data.implicit_ratio", "--model.optim.lora_lr"):
        assert text in proc.stdout, text
