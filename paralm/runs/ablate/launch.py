"""Where an ablation's (training signature, seed) pairs train: `--launcher local | fabric | torchrun | slurm`.

    local     every pair one after the other in this process (the CPU demo)
    fabric    every pair as `fabric run --devices N paralm/launch.py fit ...` on this node (multi-GPU)
    torchrun  every pair as `torchrun --standalone --nproc_per_node N paralm/launch.py fit ...`
    slurm     writes <out>/slurm/: prepare.sbatch (derived data), pairs.sbatch (a job array, one task per
              pair, `--requeue`: a requeued task resumes through `--resume auto_or_new`), submit.sh (the
              array depends on the preparation); `paralm ablate FILE --report-only` collects afterwards.
              A task trains its pair in its own process (`--launcher local`, whatever the file says: a
              file with `launcher: slurm` would otherwise ask each task to write job scripts again).

Every launcher runs the same `paralm fit` arguments (paralm/runs/ablate/fit.py), so a pair trains the same
way wherever it runs; evaluation follows in the process that launched the training (for slurm: the task).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

LAUNCHERS = ("local", "fabric", "torchrun", "slurm")
LAUNCH_SCRIPT = Path(__file__).resolve().parents[1] / "launch.py"


def _bin(name: str) -> str:
    """A console script of this environment (fabric, torchrun, paralm), else the name on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else name


def fit_command(launcher: str, args: list[str], devices: int, accelerator: str = "auto") -> list[str] | None:
    """The command line that trains one pair (None: in this process)."""
    if launcher == "local":
        return None
    if launcher == "fabric":
        return [_bin("fabric"), "run", f"--accelerator={accelerator}", f"--devices={devices}", str(LAUNCH_SCRIPT),
                *args]
    if launcher == "torchrun":
        return [_bin("torchrun"), "--standalone", f"--nproc_per_node={devices}", str(LAUNCH_SCRIPT), *args,
                f"--trainer.devices={devices}"]
    raise ValueError(f"--launcher {launcher!r} trains nothing itself; valid: {', '.join(LAUNCHERS)}")


def run_fit(launcher: str, args: list[str], devices: int, accelerator: str = "auto") -> int:
    """Train one pair with `launcher`; returns the exit code."""
    command = fit_command(launcher, args, devices, accelerator)
    if command is None:
        from paralm.lightning_cli import run_lightning_cli

        return run_lightning_cli(args)
    print("ablate: " + shlex.join(command), flush=True)
    return subprocess.run(command, check=False).returncode


def write_slurm(config: str | Path, out: str | Path, n_pairs: int, extra: list[str], devices: int) -> Path:
    """Write the slurm scripts of an ablation with `n_pairs` (training signature, seed) pairs."""
    folder = Path(out) / "slurm"
    folder.mkdir(parents=True, exist_ok=True)
    paralm = shlex.join([_bin("paralm"), "ablate", str(config), *extra])
    head = ["#!/bin/bash", f"#SBATCH --output={folder}/%x-%A_%a.log", "#SBATCH --open-mode=append"]
    (folder / "prepare.sbatch").write_text("\n".join(
        [*head, "#SBATCH --job-name=ablate-prepare", "#SBATCH --cpus-per-task=8", "set -euo pipefail",
         f"{paralm} --prepare-only", ""]))
    (folder / "pairs.sbatch").write_text("\n".join(
        [*head, "#SBATCH --job-name=ablate-pairs", f"#SBATCH --array=0-{n_pairs - 1}",
         f"#SBATCH --gres=gpu:{devices}", f"#SBATCH --ntasks-per-node={devices}", "#SBATCH --requeue",
         "set -euo pipefail", f"{paralm} --launcher local --pair-index ${{SLURM_ARRAY_TASK_ID}}", ""]))
    submit = folder / "submit.sh"
    submit.write_text("\n".join(
        ["#!/bin/bash", "set -euo pipefail", f"prep=$(sbatch --parsable {folder / 'prepare.sbatch'})",
         f"sbatch --dependency=afterok:${{prep}} {folder / 'pairs.sbatch'}",
         f"echo \"when the array is done: {paralm} --report-only\"", ""]))
    submit.chmod(0o755)
    return folder
