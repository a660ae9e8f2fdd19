"""A callback that records training modes from inside a real `paralm fit`, and one shared debug fit.

`TrainModeProbe` is named in a config overlay (`class_path: fitprobe.TrainModeProbe`), so the console
script loads it with `PYTHONPATH=tests`. Just before each training_step it records which modules that
own a trained parameter are not in train mode, which frozen modules are, and how many times HF's
gradient-checkpointing function ran, and which modules train during validation. `debug_fit` runs that fit once per test session (2 steps of
experiments/debug_cpu.yaml, checkpoint at step 2) for the train-mode and predict tests to share.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import lightning.pytorch as pl

ROOT = Path(__file__).resolve().parents[1]
PARALM = ROOT / ".venv" / "bin" / "paralm"


class TrainModeProbe(pl.Callback):
    def __init__(self, out: str) -> None:
        self.out = out
        self.steps: list[dict] = []
        self.checkpoint_calls = 0
        self.training_in_validation: list[str] = []
        self.validation_batches = 0

    def on_fit_start(self, trainer, pl_module) -> None:
        for module in pl_module.modules():  # count calls of each HF layer's checkpoint function
            inner = getattr(module, "_gradient_checkpointing_func", None)
            if inner is not None and getattr(module, "gradient_checkpointing", False):
                module._gradient_checkpointing_func = self._counting(inner)

    def _counting(self, inner):
        def call(*args, **kwargs):
            self.checkpoint_calls += 1
            return inner(*args, **kwargs)

        return call

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        owners_in_eval, frozen_in_train, training = [], [], 0
        for name, module in pl_module.named_modules():
            own = list(module.parameters(recurse=False))
            training += module.training
            if any(p.requires_grad for p in own) and not module.training:
                owners_in_eval.append(name)
            every = list(module.parameters())
            if every and not any(p.requires_grad for p in every) and module.training:
                frozen_in_train.append(name)
        self.steps.append({"step": trainer.global_step, "owners_in_eval": owners_in_eval,
                           "frozen_in_train": frozen_in_train, "modules_training": training,
                           "owners": sum(any(p.requires_grad for p in m.parameters(recurse=False))
                                         for m in pl_module.modules())})

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self.validation_batches += 1
        self.training_in_validation += [n for n, m in pl_module.named_modules() if m.training]

    def on_fit_end(self, trainer, pl_module) -> None:
        Path(self.out).write_text(json.dumps({
            "steps": self.steps, "checkpoint_calls": self.checkpoint_calls,
            "validation_batches": self.validation_batches, "training_in_validation": self.training_in_validation}))


def run_paralm(args: list[str], cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    """The installed console script, one torch thread, offline W&B, this folder importable."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(PARALM), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def debug_fit(tmp_path_factory) -> dict:
    """Once per session: `paralm fit` on debug_cpu.yaml, 2 steps, gradient checkpointing on, probe attached."""
    root = tmp_path_factory.getbasetemp() / "shared_debug_fit"
    result = {"root": root, "ckpt": root / "ckpt" / "epoch=0-step=2.ckpt", "probe": root / "probe.json",
              "config": ["--config", "experiments/debug_cpu.yaml", "--config", str(root / "overlay.yaml")]}
    if result["ckpt"].is_file() and result["probe"].is_file():
        return result
    root.mkdir(parents=True, exist_ok=True)
    (root / "overlay.yaml").write_text(
        f"trainer:\n  max_steps: 2\n  val_check_interval: 2\n  default_root_dir: {root}\n  callbacks:\n"
        "    - class_path: lightning.pytorch.callbacks.ModelCheckpoint\n"
        f"      init_args: {{dirpath: {root / 'ckpt'}, every_n_train_steps: 2, save_top_k: -1}}\n"
        f"    - class_path: fitprobe.TrainModeProbe\n      init_args: {{out: {result['probe']}}}\n")
    proc = run_paralm(["fit", *result["config"], "--model.runtime.gradient_checkpointing", "true"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    result["stdout"] = proc.stdout
    return result
