"""Where a run's files go: `<trainer.default_root_dir>/<run_name>/`.

Why: two runs started from one folder used to share `runs/debug_cpu/checkpoints/last.ckpt` (the
committed config named the folder), and `--resume auto` of one could pick the other's file. Now the run
folder is derived from the root and the run name, and everything a run writes goes inside it:

| what                               | where                                             |
|------------------------------------|---------------------------------------------------|
| checkpoints (ModelCheckpoint)      | `<run>/checkpoints`, or `<run>/<dirpath>` for a relative `dirpath` |
| logger files (W&B, CSV, ...)       | `<run>/` (a relative `save_dir` resolves under it) |
| judge results, preemption files    | `<run>/judge_eval/...`, `<run>/<dirpath>`          |
| `config.yaml` (the resolved config)| `<run>/config.yaml`                               |

Absolute paths are kept as given. The default run name is deterministic, so the same command run again
(e.g. `--resume auto` after a crash) finds its own folder: the stems of the `--config` files joined by
`+` (`--config experiments/debug_cpu.yaml` -> `debug_cpu`), or `run` without a config file, plus the
W&B run id under `wandb agent`. Other distinct runs from the same config files need distinct `--run_name`s.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_NAME = "run"
CHECKPOINT_DIR = "checkpoints"
PATH_KEYS = ("dirpath", "out_dir")  # callback init_args that name a folder the run writes
LOGGER_PATH_KEYS = ("save_dir", "dir", "root_dir")


def default_run_name(config_files: Any, environ: Mapping[str, str] | None = None) -> str:
    """`a+b` for `--config x/a.yaml --config y/b.yaml`; DEFAULT_NAME when no file was given.

    Under `wandb agent` (WANDB_SWEEP_ID and WANDB_RUN_ID set) the trial's run id is appended: every trial
    of a sweep runs the same config files, and each needs its own folder (a resumed trial keeps its id).
    """
    environ = os.environ if environ is None else environ
    stems = [Path(str(getattr(f, "relative", f))).stem for f in (config_files or [])]
    name = "+".join(s for s in stems if s) or DEFAULT_NAME
    if environ.get("WANDB_SWEEP_ID") and environ.get("WANDB_RUN_ID"):
        name = f"{name}-{environ['WANDB_RUN_ID']}"
    return name


def run_dir(default_root_dir: str | None, run_name: str) -> Path:
    if not run_name or run_name in (".", "..") or "/" in run_name or "\\" in run_name:
        from paralm.fault.exits import UserError

        raise UserError(f"--run_name {run_name!r}: a run name is one folder name (no '/', not '.' or '..'); "
                        "choose another name")
    return Path(default_root_dir or "runs") / run_name


def _under(folder: Path, value: Any) -> Any:
    """`value` re-rooted under `folder` when it is a relative path; absolute paths and non-paths unchanged."""
    if not isinstance(value, (str, Path)) or not str(value) or "://" in str(value):
        return value
    path = Path(value)
    return str(path if path.is_absolute() else folder / path)


def _is_subclass(class_path: Any, base: type) -> bool:
    try:
        module, _, name = str(class_path).rpartition(".")
        return issubclass(getattr(importlib.import_module(module), name), base)
    except (ImportError, AttributeError, TypeError, ValueError):
        return False


def _as_list(value: Any) -> list:
    if value is None or isinstance(value, bool):
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def resolve_paths(sub: Any, folder: Path) -> None:
    """Re-root, in place, every folder a run writes (parsed config of one subcommand) under `folder`."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    sub.trainer.default_root_dir = str(folder)
    for spec in _as_list(sub.trainer.get("callbacks")):
        args = spec.get("init_args") if hasattr(spec, "get") else None
        if args is None:
            continue
        for key in PATH_KEYS:
            if args.get(key):
                args[key] = _under(folder, args[key])
        if _is_subclass(spec.get("class_path"), ModelCheckpoint) and not args.get("dirpath"):
            args["dirpath"] = str(folder / CHECKPOINT_DIR)
    for spec in _as_list(sub.trainer.get("logger")):
        args = spec.get("init_args") if hasattr(spec, "get") else None
        for key in LOGGER_PATH_KEYS:
            if args is not None and args.get(key):
                args[key] = _under(folder, args[key])
    if sub.get("preemption") is not None and sub.preemption.get("dirpath"):
        sub.preemption.dirpath = _under(folder, sub.preemption.dirpath)
