"""Training of one ablation (training signature, seed): `paralm fit` itself, on a base config + a row overlay.

    paralm fit --config <base> --config <out>/overlays/<row>.yaml --seed_everything S \\
        --run_name <row>-seedS --run_group <ablation> --trainer.default_root_dir <out>/runs --resume auto_or_new

Why: an ablation row must train with every feature `paralm fit` has (precision, strategies, verified
checkpoints, resume, preemption, non-finite guard, W&B naming with the full resolved config), so it is
that command. The base is the ablation's `paralm fit` config (its `model:` file; for an inline model a
CPU base is written to `<out>/overlays/base.yaml`). The overlay names only what the row and the
ablation's shared compute change: training sources (the derived shard sets of `<out>/cache/...` by
path), prompts (with the instruction actually used), steps, batch, schedule, decoding, checkpoints,
logger. It is written once per row and does not depend on the seed, so the command above, typed by a
user, trains the very same weights. The data order comes from the base's `data.seed` and is the same
for every seed; the seed changes initialisation and dropout.

`--resume auto_or_new` makes an interrupted row continue from its newest verified checkpoint; a row
whose checkpoint already holds the final step is not trained again.

`train.batch_size` is the global batch of one optimizer step, wherever the pair trains: under
`--launcher fabric|torchrun --devices N` each of the N processes takes batch_size / N items (the
overlay's `data.batch_size`), and the seeded plan (`samples_per_epoch`, global) is the same, so with
the loss normalised over all ranks' tokens the N-process run trains the weights of the one-process run
(tests/runs/test_ablate_fabric.py). A batch that N does not divide is refused rather than silently changed.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
from pathlib import Path

import yaml

from paralm.atomic_files import atomic_write_text
from paralm.fault.exits import FaultExit, UserError
from paralm.runs.ablate.config import SOURCE_KINDS, AblationConfig, cache_root

log = logging.getLogger(__name__)
CPU_TRAINER = {"accelerator": "cpu", "devices": 1, "precision": "32-true"}
CHECKPOINT_CLASS = "lightning.pytorch.callbacks.ModelCheckpoint"


def run_name(row: str, seed: int) -> str:
    return f"{row}-seed{seed}"


def runs_root(cfg: AblationConfig) -> Path:
    return Path(cfg.out) / "runs"


def checkpoint_dir(cfg: AblationConfig, row: str, seed: int) -> Path:
    return runs_root(cfg) / run_name(row, seed) / "checkpoints"


def checkpoint_every(steps: int, cfg_every: int | None = None) -> int:
    """A checkpoint interval that divides `steps` (so the last step is saved), about 4 per run by default."""
    target = max(1, cfg_every or steps // 4)
    return max(d for d in range(1, min(target, steps) + 1) if steps % d == 0)


def processes(cfg: AblationConfig) -> int:
    """How many training processes the launcher starts per pair (fabric and torchrun: `devices`)."""
    return cfg.devices if cfg.launcher in ("fabric", "torchrun") else 1


def process_batch(cfg: AblationConfig) -> int:
    """Each process's share of the global `train.batch_size` (see the module docstring)."""
    n, batch = processes(cfg), cfg.train.batch_size
    if batch % n:
        raise UserError(f"train.batch_size {batch} is the global batch of a step; --devices {n} does not divide "
                        f"it (choose a batch size that is a multiple of {n})")
    return batch // n


def base_config(cfg: AblationConfig) -> Path:
    """The `paralm fit` config every row starts from (written for an inline model)."""
    if cfg.base_config:
        return Path(cfg.base_config)
    path = Path(cfg.out) / "overlays" / "base.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"trainer": dict(CPU_TRAINER, logger=False),
           "model": {"model": _plain(dataclasses.asdict(cfg.model))}}
    _write_yaml(path, doc, f"# Base of ablation {cfg.name}: its inline model on CPU (fp32).\n")
    return path


def _plain(value):
    """YAML-safe copy (tuples -> lists)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _write_yaml(path: Path, doc: dict, header: str) -> None:
    text = header + yaml.safe_dump(doc, sort_keys=False)
    if not path.exists() or path.read_text() != text:
        atomic_write_text(path, text)


def _base_callbacks(cfg: AblationConfig) -> list:
    """The base config's own callbacks (an overlay's list replaces the base's, so they are repeated), less
    its ModelCheckpoint (the row's own replaces it) and, without a logger, a LearningRateMonitor (it
    refuses to run without one)."""
    if not cfg.base_config:
        return []
    doc = yaml.safe_load(Path(cfg.base_config).read_text()) or {}
    callbacks = (doc.get("trainer") or {}).get("callbacks") or []
    dropped = ("ModelCheckpoint",) + (("LearningRateMonitor",) if cfg.logging.wandb == "disabled" else ())
    return [c for c in callbacks if not str(c.get("class_path", "")).endswith(dropped)]


def _prompt(cfg: AblationConfig, prompt) -> dict:
    text = {"instruction": cfg.train.instruction} if cfg.train.instruction else {}
    return dataclasses.asdict(dataclasses.replace(prompt, **text))


def _logger(cfg: AblationConfig):
    if cfg.logging.wandb == "disabled":
        return False
    return {"class_path": "lightning.pytorch.loggers.WandbLogger",
            "init_args": {"project": cfg.logging.project, "offline": cfg.logging.wandb == "offline"}}


def row_overlay(cfg: AblationConfig, row: str, paths: dict[str, Path]) -> dict:
    """What row `row` and the ablation's shared compute change in the base config (seed independent)."""
    spec, train = cfg.rows[row], cfg.train
    sources = [{"name": n, "path": str(paths[n]), "kind": SOURCE_KINDS[n], "weight": w, "split": "train"}
               for n, w in spec.sources.items()]
    every = checkpoint_every(train.steps, train.checkpoint_every)
    checkpoint = {"class_path": CHECKPOINT_CLASS,
                  "init_args": {"every_n_train_steps": every, "save_top_k": -1, "save_last": True}}
    feature_cache = (str(cache_root(cfg) / "features")
                     if train.feature_cache and cfg.model.encoder.trainable == "frozen" else None)
    return {
        "trainer": {"max_steps": train.steps, "max_epochs": -1, "gradient_clip_val": train.gradient_clip_val or None,
                    "log_every_n_steps": max(1, train.steps // 20), "limit_val_batches": 0,
                    "num_sanity_val_steps": 0, "deterministic": True, "enable_model_summary": False,
                    "enable_progress_bar": False, "logger": _logger(cfg),
                    "callbacks": [*_base_callbacks(cfg), checkpoint]},
        "model": {"optim": dataclasses.asdict(train.optim), "generation": dataclasses.asdict(train.generation)},
        "data": {"train_sources": sources, "val_sources": [], "implicit_ratio": None,
                 "test_sources": [{"name": "general", "path": str(paths["general"]), "kind": "general",
                                   "split": cfg.data.test_split}],
                 "train_prompt": _prompt(cfg, spec.train_prompt), "eval_prompt": _prompt(cfg, spec.eval_prompt),
                 "batch_size": process_batch(cfg), "max_batch_seconds": None, "num_workers": train.num_workers,
                 "samples_per_epoch": train.steps * train.batch_size, "max_duration": None,
                 "feature_cache": feature_cache},
    }


def write_overlay(cfg: AblationConfig, row: str, paths: dict[str, Path]) -> Path:
    path = Path(cfg.out) / "overlays" / f"{row}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    note = cfg.rows[row].note or "row of the ablation"
    _write_yaml(path, row_overlay(cfg, row, paths), f"# Row `{row}` of ablation {cfg.name}.\n# Hypothesis: {note}\n")
    return path


def fit_args(cfg: AblationConfig, row: str, seed: int, paths: dict[str, Path]) -> list[str]:
    """The `paralm fit` arguments that train (row, seed); printed so a user can run them by hand."""
    extra = [w for f in cfg.fit_configs for w in ("--config", str(f))]
    return ["fit", "--config", str(base_config(cfg)), *extra, "--config", str(write_overlay(cfg, row, paths)),
            "--seed_everything", str(seed), "--run_name", run_name(row, seed), "--run_group", cfg.name,
            "--trainer.default_root_dir", str(runs_root(cfg)), "--resume", "auto_or_new"]


def trained_step(cfg: AblationConfig, row: str, seed: int) -> tuple[int, Path | None]:
    """(global step, file) of the newest verified checkpoint of (row, seed); (0, None) when none."""
    from paralm.fault.resume import _recorded_step, scan

    found = scan([checkpoint_dir(cfg, row, seed)]).path
    return (_recorded_step(found) or 0, found) if found is not None else (0, None)


def train(cfg: AblationConfig, row: str, seed: int, paths: dict[str, Path]) -> Path:
    """Train (row, seed) through `paralm fit` (resuming an interrupted run); returns the final checkpoint."""
    from paralm.runs.ablate.launch import run_fit

    step, found = trained_step(cfg, row, seed)
    if step >= cfg.train.steps:
        print(f"ablate: {run_name(row, seed)} already trained ({found})", flush=True)
        return found
    args = fit_args(cfg, row, seed, paths)
    if step:
        print(f"ablate: {run_name(row, seed)} resumes from step {step} ({found})", flush=True)
    print("ablate: paralm " + shlex.join(args), flush=True)
    code = run_fit(cfg.launcher, args, cfg.devices, str(base_trainer(cfg).get("accelerator", "auto")))
    step, found = trained_step(cfg, row, seed)
    if code != 0 or step < cfg.train.steps:
        raise FaultExit(f"ablate: training {run_name(row, seed)} ended with exit code {code} at step {step} "
                        f"of {cfg.train.steps}", code or 1)
    return found


def base_trainer(cfg: AblationConfig) -> dict:
    """The trainer section of the base config with the extra fit configs over it (shallow, as written)."""
    trainer = dict(CPU_TRAINER) if not cfg.base_config else {}
    for path in [cfg.base_config, *cfg.fit_configs]:
        if path:
            trainer.update((yaml.safe_load(Path(path).read_text()) or {}).get("trainer") or {})
    return trainer
