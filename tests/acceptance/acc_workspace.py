"""A throw-away folder in which documented command lines run as written.

Documented commands use paths relative to the repository root (`experiments/...`, `data/demo/...`,
`paralm/launch.py`) and write relative paths (`runs/...`, `shards/...`, `exported/`). The workspace
links the repository's read-only inputs in and runs every command with the workspace as its working
directory, so every output lands in the temporary folder. Inputs that the docs assume the user has
(`corpus.jsonl`, `audio/`, `models/...`, `preds.jsonl`, `judged_a`, `my_overlay.yaml`) are made here:
tiny random models, a few clips of the demo corpus, synthetic judged rows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
LINKED = ("experiments", "data", "sweeps", "callbacks", "docs", "benchmarks", "tests", "Makefile",
          "pyproject.toml")
DEMO_SHARDS = "data/demo/shards/general"

# Size overrides: what turns experiments/base.yaml (GPU, local model folders, the user's data) into a
# two-step CPU run on the demo corpus. Only sizes, devices and paths change; the config's shape stays.
TINY_ENCODER = {"d_model": 64, "encoder_layers": 2, "encoder_attention_heads": 4, "encoder_ffn_dim": 128,
                "num_mel_bins": 80, "max_source_positions": 1500}
TINY_LLM = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 1024}
CPU_OVERLAY = {
    "trainer": {"accelerator": "cpu", "devices": 1, "precision": "32-true", "max_steps": 2,
                "val_check_interval": 2, "limit_val_batches": 1, "num_sanity_val_steps": 0,
                "enable_progress_bar": False},
    "model": {"model": {"encoder": {"path": None, "config": TINY_ENCODER},
                        "projector": {"stack": 4},
                        "llm": {"path": None, "config": TINY_LLM, "tokenizer": "builtin:tiny"}},
              "generation": {"max_new_tokens": 4}},
    "data": {"train_sources": [
                {"name": "general", "path": DEMO_SHARDS, "kind": "general", "split": "train"},
                {"name": "implicit", "path": DEMO_SHARDS, "kind": "implicit", "split": "train"}],
             "val_sources": [{"name": "cpqa", "path": DEMO_SHARDS, "kind": "implicit", "split": "val"}],
             "batch_size": 4, "max_batch_seconds": None, "num_workers": 0, "samples_per_epoch": 64},
}
# Appended to every documented training command that runs here (after the config's own values).
FIT_STEPS = ["--trainer.max_steps=2", "--trainer.val_check_interval=2", "--trainer.limit_val_batches=1",
             "--trainer.num_sanity_val_steps=0"]


@dataclass
class Result:
    argv: list[str]
    returncode: int
    output: str
    seconds: float = 0.0

    def tail(self, n: int = 4000) -> str:
        return f"$ {' '.join(self.argv)}\n(exit {self.returncode})\n{self.output[-n:]}"


@dataclass
class Workspace:
    path: Path
    server_url: str = ""
    made: set = field(default_factory=set)

    def env(self) -> dict[str, str]:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "offline",
               "WANDB_SILENT": "true", "OPENAI_API_KEY": "acceptance-test-key",
               "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        for var, sub in (("WANDB_DATA_DIR", "wandb-data"), ("WANDB_CACHE_DIR", "wandb-cache"),
                         ("WANDB_CONFIG_DIR", "wandb-config")):
            env[var] = str(self.path / ".home" / sub)  # W&B's staging and caches stay in the workspace too
        env.pop("PARALM_RUNS_DIR", None)
        return env

    def run(self, argv: list[str], timeout: int = 600, env: dict | None = None) -> Result:
        """Run argv with the workspace as working directory; the program is looked up on the venv's PATH."""
        import time

        env = env or self.env()
        exe = shutil.which(argv[0], path=env["PATH"]) or argv[0]
        start = time.monotonic()
        try:
            proc = subprocess.run([exe, *argv[1:]], cwd=self.path, env=env, capture_output=True, text=True,
                                  timeout=timeout)
            out, code = proc.stdout + proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as late:
            out, code = f"timed out after {timeout}s\n{late.stdout or ''}{late.stderr or ''}", 124
        except FileNotFoundError as missing:  # a program that is not installed: the shell's code
            out, code = f"{missing}", 127
        return Result(argv, code, out, time.monotonic() - start)


def make_workspace(path: Path) -> Workspace:
    path.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        if not (path / name).exists():
            (path / name).symlink_to(ROOT / name)
    _mirror_package(path / "paralm")
    write_yaml(path / "cpu_overlay.yaml", CPU_OVERLAY)
    write_yaml(path / "my_overlay.yaml", CPU_OVERLAY)  # README: `--config my_overlay.yaml`
    return Workspace(path)


def _mirror_package(dest: Path) -> None:
    """paralm/ as a real folder of links, with the scripts users run by path (`python paralm/launch.py`)
    as real files: Python puts a script's resolved folder on sys.path, and launch.py removes its own
    folder from there by its unresolved path, so a linked script would see paralm/ shadow the stdlib."""
    if dest.exists():
        return
    dest.mkdir()
    for child in (ROOT / "paralm").iterdir():
        if child.name == "__pycache__":
            continue
        if child.name == "launch.py":
            shutil.copy2(child, dest / child.name)
        else:
            (dest / child.name).symlink_to(child)


def write_yaml(path: Path, data: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
