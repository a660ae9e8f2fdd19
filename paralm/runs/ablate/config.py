"""Ablation files: one shared base (model, optimiser, steps, batch, schedule), seeds, and named rows.

A row = (sources and weights, train prompt mode + metadata source, eval prompt mode + metadata source).
Every row trains with the same steps, batch size and schedule for every seed, so rows differ only in
what they are shown. Sources are named, not paths: `general` is the corpus with its annotator
predictions, `implicit` the template QA pairs generated from its labels, `control` the same pairs
generated from labels permuted across clips (the data volume of `implicit` without its information).

The metrics are fixed here, before any result exists (see `METRICS`); the report never picks others.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from paralm.api.chat_types import ClientConfig
from paralm.data.prompts import PromptConfig
from paralm.dataclass_io import from_dict
from paralm.lit_module import GenerationConfig
from paralm.model.config import SpeechLMConfig
from paralm.optim import OptimConfig

SOURCE_NAMES = ("general", "implicit", "control")
SOURCE_KINDS = {"general": "general", "implicit": "implicit", "control": "implicit"}
# metric name -> one-line definition (printed in every report)
METRICS = {
    "dp_acc": "DP emotion label accuracy: the single emotion the answer names equals the gold emotion",
    "cp_mention": "CP emotion mention: the single emotion the CP answer names equals the clip's gold emotion",
    "c_f1": "C token F1 between answer and reference (SQuAD normalisation)",
}
_ROW_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass
class DataSettings:
    """Where the corpus is and how the derived sources are made.

    Args:
        general: shard folder of the corpus (general source: transcription, content QA, emotion labels),
            relative to the working directory.
        test_split: split evaluated after training (disjoint voices and sentences from training).
        annotator: annotator spec fitted on the training split for explicit metadata (id = its kind).
        folds: folds of the out-of-fold training predictions (>= 2).
        implicit_labels: labels the implicit generator reads: "gold" or "pred:<annotator>".
        permute_seed: seed of the label permutation that makes the control source.
        generator_seed: seed of the template generator (same for implicit and control).
        eval_max_items: evaluate a seeded random subset of this many test questions, the same for every
            row and seed (None: all of them).
        cache: folder of the derived data and the encoder-state cache (default: `<out>/cache`); ablations
            over the same corpus and derivation settings may share one (each derivation gets its own
            fingerprinted subfolder).
    """

    general: str = "data/demo/shards/general"
    test_split: str = "test"
    annotator: str = "acoustic_fit"
    folds: int = 5
    implicit_labels: str = "gold"
    permute_seed: int = 1234
    generator_seed: int = 0
    eval_max_items: int | None = None
    cache: str | None = None


@dataclass
class TrainSettings:
    """Compute shared by every row and seed.

    Args:
        steps: optimiser steps per run.
        batch_size: items per batch.
        optim: optimiser and schedule.
        generation: decoding settings at evaluation.
        gradient_clip_val: gradient norm clip (0 = none).
        num_workers: dataloader workers.
        eval_batch_size: items per generation batch.
        feature_cache: compute a frozen encoder's states once (under `<out>/cache/features`) and share
            them across rows and seeds; ignored when the encoder is trained.
        instruction: user-turn template ({question}, {audio}) of every row's prompts; None keeps the
            prompt default. Shorter prompts make character-level CPU demos much faster.
        threads: torch CPU threads per run; 1 avoids oversubscribing small CPU boxes (tiny models gain
            nothing from more, and a second busy thread per core made steps many times slower).
        checkpoint_every: steps between a row's checkpoints (rounded down to a divisor of `steps`, so the
            last step is always saved); None: about four per run. An interrupted row resumes from the newest.
    """

    steps: int = 200
    batch_size: int = 16
    optim: OptimConfig = field(default_factory=OptimConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    gradient_clip_val: float = 1.0
    num_workers: int = 0
    eval_batch_size: int = 64
    feature_cache: bool = True
    instruction: str | None = None
    threads: int = 1
    checkpoint_every: int | None = None


@dataclass
class RowSpec:
    """One ablation row.

    Args:
        sources: source name -> mixture weight (names: general, implicit, control).
        train_prompt: prompt mode + metadata source at training (explicit: out-of-fold predictions).
        eval_prompt: prompt mode + metadata source at evaluation ("gold" makes the row an ORACLE).
        note: one-line hypothesis shown in the report.
    """

    sources: dict[str, float]
    train_prompt: PromptConfig = field(default_factory=PromptConfig)
    eval_prompt: PromptConfig = field(default_factory=PromptConfig)
    note: str = ""

    @property
    def is_oracle(self) -> bool:
        return self.eval_prompt.is_oracle


@dataclass
class LoggingSettings:
    """Run tracking.

    Args:
        wandb: "offline" (default), "online" or "disabled".
        project: W&B project; every (row, seed) joins one group named after the ablation.
    """

    wandb: str = "offline"
    project: str = "paralm-ablation"


@dataclass
class JudgeSettings:
    """Optional LLM judge over the saved predictions (key from the environment only).

    Args:
        client: the judge's API client (`ClientConfig`: base_url, model, api_key_env, concurrency, timeouts,
            retries, budget, prices, ...); its cache defaults to each judged folder's judge_cache.sqlite.
            The earlier flat spelling `judge: {base_url, model, api_key_env}` is still read (`judge_section`).
    """

    client: ClientConfig


def judge_section(data: Any) -> dict:
    """The `judge:` mapping with client keys written flat (`{base_url, model, ...}`, the earlier spelling)
    moved under `client:`; unknown keys are an error naming the valid ones."""
    if not isinstance(data, dict):
        raise ValueError(f"judge: expected a mapping, got {type(data).__name__}")
    client_keys = {f.name for f in dataclasses.fields(ClientConfig)}
    flat = {k: v for k, v in data.items() if k in client_keys}
    rest = {k: v for k, v in data.items() if k not in client_keys}
    if flat:
        nested = rest.get("client") or {}
        if not isinstance(nested, dict):
            raise ValueError(f"judge.client: expected a mapping, got {type(nested).__name__}")
        rest["client"] = {**flat, **nested}
    _check_keys("judge", rest, JudgeSettings)
    if not isinstance(rest.get("client"), dict):
        raise ValueError(f"judge: give the judge endpoint as client: {{base_url, model}}; valid client keys: "
                         f"{sorted(client_keys)}")
    return rest


@dataclass
class AblationConfig:
    """A whole ablation.

    Args:
        name: ablation name (W&B group, report title).
        out: output folder (results, cache, report), relative to the working directory.
        seeds: seeds; each row runs once per seed with identical compute.
        model: the SpeechLMConfig inline, or the path (relative to the ablation file) of a YAML holding one,
            either bare or as the `model.model` section of a `paralm fit` config. A `paralm fit` config
            is the base every row trains from (its trainer section included: accelerator, precision, ...).
        base_config: set from `model` when it names a `paralm fit` config (the resolved path).
        data: corpus and derived-source settings.
        train: shared compute.
        rows: row name -> row.
        baseline: row that relative gains are measured against.
        headline: (treatment, control) rows of the headline difference on neutral sentences.
        n_boot: bootstrap resamples of every interval.
        logging: run tracking.
        judge: LLM judge settings (None: deterministic scorers only).
        launcher: where each (training signature, seed) pair trains: local (this process), fabric or
            torchrun (`devices` processes on this node), slurm (job scripts; see paralm/runs/ablate/launch.py).
        devices: processes (GPUs) per pair for fabric, torchrun and slurm.
        jobs: pairs trained at the same time on this node, each in its own process (local, fabric,
            torchrun; paralm/runs/ablate/pool.py): on GPUs each gets its own `devices` GPUs, on a CPU its
            own `train.threads` threads (the 2-core demo runs 2 one-thread pairs: 1.12x the steps per
            second of one pair on two threads, benchmarks/demo_jobs.md).
        fit_configs: extra `paralm fit` configs applied after the base and before each row's overlay (e.g. a
            cluster's trainer settings, or a tiny CPU model to smoke-test a GPU ablation), relative to the
            working directory.
    """

    name: str
    model: SpeechLMConfig
    rows: dict[str, RowSpec]
    out: str = "runs/ablation"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    data: DataSettings = field(default_factory=DataSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    baseline: str = "baseline"
    headline: tuple[str, str] = ("implicit", "control")
    n_boot: int = 1000
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    judge: JudgeSettings | None = None
    launcher: str = "local"
    devices: int = 1
    jobs: int = 1
    fit_configs: list[str] = field(default_factory=list)
    base_config: str | None = None


def _check_keys(where: str, data: Any, cls: type) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    valid = sorted(f.name for f in dataclasses.fields(cls))
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid: {valid}")


def _row(name: str, data: Any) -> RowSpec:
    if not _ROW_NAME.match(name):
        raise ValueError(f"row name {name!r} must be lower case letters, digits and '_' (starting with a letter)")
    _check_keys(f"rows.{name}", data, RowSpec)
    sources = data.get("sources")
    if not isinstance(sources, dict) or not sources:
        raise ValueError(f"rows.{name}.sources: give at least one source with a weight; valid: {list(SOURCE_NAMES)}")
    bad = sorted(set(sources) - set(SOURCE_NAMES))
    if bad:
        raise ValueError(f"rows.{name}.sources: unknown source(s) {bad}; valid: {list(SOURCE_NAMES)}")
    if any(not isinstance(w, (int, float)) or w <= 0 for w in sources.values()):
        raise ValueError(f"rows.{name}.sources: weights must be positive numbers, got {sources}")
    for key in ("train_prompt", "eval_prompt"):
        if key in data:
            _check_keys(f"rows.{name}.{key}", data[key], PromptConfig)
    try:
        return from_dict(RowSpec, {**data, "sources": {k: float(v) for k, v in sources.items()}})
    except ValueError as err:
        raise ValueError(f"rows.{name}: {err}") from err


def _model(value: Any, base_dir: Path) -> tuple[SpeechLMConfig, str | None]:
    """(model config, path of the `paralm fit` config it came from, or None)."""
    fit_config = None
    if isinstance(value, str):
        path = (base_dir / value) if not Path(value).is_absolute() else Path(value)
        if not path.exists():
            raise ValueError(f"model: config file {path} does not exist")
        value = yaml.safe_load(path.read_text())
        if isinstance(value, dict) and "encoder" not in value and isinstance(value.get("model"), dict):
            value = value["model"].get("model")  # a `paralm fit` config: take its model.model section
            fit_config = str(path)
    if not isinstance(value, dict):
        raise ValueError("model: give a SpeechLMConfig mapping or the path of a YAML file holding one")
    return from_dict(SpeechLMConfig, value), fit_config


def parse_ablation(data: Any, base_dir: str | Path = ".") -> AblationConfig:
    """Validate a loaded ablation mapping; every error names the bad key and the valid choices."""
    _check_keys("ablation", data, AblationConfig)
    for key in ("name", "model", "rows"):
        if key not in data:
            raise ValueError(f"ablation: missing required key {key!r}")
    if not isinstance(data["rows"], dict) or not data["rows"]:
        raise ValueError("ablation: rows must map row names to rows")
    for key, cls in (("data", DataSettings), ("train", TrainSettings), ("logging", LoggingSettings)):
        if key in data:
            _check_keys(key, data[key], cls)
    if data.get("judge") is not None:
        data = {**data, "judge": judge_section(data["judge"])}
    rows = {name: _row(name, spec) for name, spec in data["rows"].items()}
    sections = {"data": DataSettings, "train": TrainSettings, "logging": LoggingSettings, "judge": JudgeSettings}
    kwargs = {k: (from_dict(sections[k], v) if k in sections and v is not None else v)
              for k, v in data.items() if k not in ("rows", "model")}
    kwargs.pop("base_config", None)
    model, fit_config = _model(data["model"], Path(base_dir))
    cfg = AblationConfig(rows=rows, model=model, base_config=fit_config, **kwargs)
    cfg.headline = tuple(cfg.headline)
    cfg.seeds = [int(s) for s in cfg.seeds]
    check_consistency(cfg)
    return cfg


def check_consistency(cfg: AblationConfig) -> None:
    """Cross-field checks: baseline and headline rows exist, seeds are unique, settings are in range."""
    names = list(cfg.rows)
    for role, row in (("baseline", cfg.baseline), *(("headline", r) for r in cfg.headline)):
        if row not in cfg.rows:
            raise ValueError(f"{role}: unknown row {row!r}; valid: {names}")
    if len(cfg.headline) != 2:
        raise ValueError(f"headline: give [treatment, control], got {list(cfg.headline)}")
    if not cfg.seeds or len(set(cfg.seeds)) != len(cfg.seeds):
        raise ValueError(f"seeds: give at least one seed, each once; got {cfg.seeds}")
    if cfg.logging.wandb not in ("offline", "online", "disabled"):
        raise ValueError(f"logging.wandb: unknown mode {cfg.logging.wandb!r}; valid: offline, online, disabled")
    check_launch(cfg)
    if cfg.data.folds < 2:
        raise ValueError(f"data.folds: out-of-fold predictions need >= 2 folds, got {cfg.data.folds}")
    if cfg.train.steps < 1 or cfg.train.batch_size < 1:
        raise ValueError("train.steps and train.batch_size must be >= 1")


def check_launch(cfg: AblationConfig) -> None:
    """Launcher, device count and extra fit configs (checked again after command-line choices)."""
    if cfg.launcher not in ("local", "fabric", "torchrun", "slurm"):
        raise ValueError(f"launcher: unknown launcher {cfg.launcher!r}; valid: local, fabric, torchrun, slurm")
    if cfg.devices < 1:
        raise ValueError(f"devices must be >= 1, got {cfg.devices}")
    if isinstance(cfg.jobs, bool) or not isinstance(cfg.jobs, int) or cfg.jobs < 1:
        raise ValueError(f"jobs must be a whole number >= 1, got {cfg.jobs!r}")
    missing = [f for f in cfg.fit_configs if not Path(f).is_file()]
    if missing:
        raise ValueError(f"fit_configs: no such file(s) {missing} (relative to the working directory)")


def load_ablation(path: str | Path) -> AblationConfig:
    """Read and validate an ablation YAML file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"ablation file {path} does not exist")
    return parse_ablation(yaml.safe_load(path.read_text()), base_dir=path.parent)


def select(cfg: AblationConfig, rows: list[str] | None = None, seeds: int | None = None,
           steps: int | None = None, out: str | None = None, launcher: str | None = None,
           devices: int | None = None, fit_configs: list[str] | None = None,
           jobs: int | None = None) -> AblationConfig:
    """A copy narrowed by command-line choices (a subset of rows, the first N seeds, other steps or out,
    another launcher, device count or number of parallel pairs, extra fit configs)."""
    new = dataclasses.replace(cfg, rows=dict(cfg.rows), seeds=list(cfg.seeds),
                              train=dataclasses.replace(cfg.train), fit_configs=list(cfg.fit_configs))
    new.launcher = launcher or cfg.launcher
    new.devices = devices or cfg.devices
    new.jobs = cfg.jobs if jobs is None else jobs
    new.fit_configs += list(fit_configs or [])
    if rows:
        unknown = [r for r in rows if r not in cfg.rows]
        if unknown:
            raise ValueError(f"--rows: unknown row(s) {unknown}; valid: {list(cfg.rows)}")
        new.rows = {r: cfg.rows[r] for r in rows}
    if seeds is not None:
        if not 1 <= seeds <= len(cfg.seeds):
            raise ValueError(f"--seeds must be between 1 and {len(cfg.seeds)}, got {seeds}")
        new.seeds = cfg.seeds[:seeds]
    if steps is not None:
        new.train.steps = int(steps)
    if out is not None:
        new.out = out
    check_launch(new)
    return new


def cache_root(cfg: AblationConfig) -> Path:
    """Where the derived data and encoder states of `cfg` live (`data.cache`, else `<out>/cache`)."""
    return Path(cfg.data.cache) if cfg.data.cache else Path(cfg.out) / "cache"
