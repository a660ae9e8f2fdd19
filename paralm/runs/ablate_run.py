"""Train and evaluate one (row, seed) of an ablation in-process, and write its result folder.

    results/<row>/seed<k>/predictions.jsonl           test answers with the row's eval prompt
    results/<row>/seed<k>/predictions_shuffled.jsonl  the same questions, each clip given another's audio
    results/<row>/seed<k>/scores.json                 per-subset metric means of both (+ scorer summary)
    results/<row>/seed<k>/judge[_shuffled]/           LLM judge output, when a judge is configured

`scores.json` is written last (atomically), so its presence marks a finished pair and a rerun skips
it. Every row gets the same Trainer settings (steps, batch, schedule, clip) for a given seed; only
sources and prompts differ, which is what makes the rows comparable.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

from paralm.data.datamodule import MixtureDataModule
from paralm.data.sources import SourceSpec
from paralm.eval.generation import flatten_metrics, generate_rows
from paralm.eval.predictions import PredictionRow, write_predictions
from paralm.eval.scorers import score_predictions
from paralm.lit_module import SpeechLMModule
from paralm.runs.ablate_config import SOURCE_KINDS, AblationConfig, RowSpec
from paralm.runs.ablate_metrics import mean_scores

log = logging.getLogger(__name__)
SCORES = "scores.json"
SHUFFLE_OFFSET = 10_007  # shuffled-audio pairing seed = run seed + offset (the same for every row)


def result_dir(out: str | Path, row: str, seed: int) -> Path:
    return Path(out) / "results" / row / f"seed{seed}"


def is_finished(out: str | Path, row: str, seed: int) -> bool:
    return (result_dir(out, row, seed) / SCORES).exists()


def build_datamodule(cfg: AblationConfig, row: RowSpec, seed: int, paths: dict[str, Path]) -> MixtureDataModule:
    """The row's training mixture and the shared test source, with the row's prompts."""
    train = [SourceSpec(name=name, path=str(paths[name]), kind=SOURCE_KINDS[name], weight=w, split="train")
             for name, w in row.sources.items()]
    test = [SourceSpec(name="general", path=str(paths["general"]), kind="general", split=cfg.data.test_split)]
    text = {"instruction": cfg.train.instruction} if cfg.train.instruction else {}
    dm = MixtureDataModule(
        train_sources=train, test_sources=test, train_prompt=replace(row.train_prompt, **text),
        eval_prompt=replace(row.eval_prompt, **text),
        batch_size=cfg.train.batch_size, num_workers=cfg.train.num_workers, seed=seed,
        samples_per_epoch=cfg.train.steps * cfg.train.batch_size, max_duration=None,
        feature_cache=_feature_cache_dir(cfg),
    )
    if cfg.data.eval_max_items is not None:
        _subsample_test(dm, cfg.data.eval_max_items)
    return dm


def _feature_cache_dir(cfg: AblationConfig) -> str | None:
    """Shared encoder-state cache (the store is keyed by the encoder's fingerprint, so a changed encoder
    or feature front end gets new states)."""
    if not cfg.train.feature_cache or cfg.model.encoder.trainable != "frozen":
        return None
    return str(Path(cfg.out) / "cache" / "features")


def _subsample_test(dm: MixtureDataModule, n: int) -> None:
    """Keep a seeded random subset of n test items (seed fixed, so every row and seed sees the same items)."""
    source = dm.sources("test")[0]
    if n < len(source.items):
        keep = np.sort(np.random.default_rng(0).choice(len(source.items), size=n, replace=False))
        source.items = source.items[keep]


def _logger(cfg: AblationConfig, name: str, seed: int, run_dir: Path):
    if cfg.logging.wandb == "disabled":
        return False
    from lightning.pytorch.loggers import WandbLogger

    os.environ.setdefault("WANDB_SILENT", "true")
    return WandbLogger(project=cfg.logging.project, group=cfg.name, name=f"{name}-seed{seed}", job_type=name,
                       save_dir=str(run_dir), offline=cfg.logging.wandb == "offline",
                       config={"row": name, "seed": seed, "sources": cfg.rows[name].sources,
                               "train_prompt": asdict(cfg.rows[name].train_prompt),
                               "eval_prompt": asdict(cfg.rows[name].eval_prompt),
                               "steps": cfg.train.steps, "batch_size": cfg.train.batch_size})


def _predict(module: SpeechLMModule, dm: MixtureDataModule, name: str, seed: int, max_items: int | None,
             shuffle_seed: int | None) -> list[PredictionRow]:
    loader = dm.generation_dataloader("test", shuffle_audio_seed=shuffle_seed)
    return generate_rows(module.generate, loader, to_device=lambda b: b.to(module.device), max_samples=max_items,
                         system=name, seed=seed, row=name)


def training_signature(cfg: AblationConfig, name: str) -> str:
    """Rows with equal sources and training prompt train the same model (e.g. explicit and its oracle)."""
    row = cfg.rows[name]
    return json.dumps({"sources": row.sources, "train_prompt": asdict(row.train_prompt)}, sort_keys=True)


def train_and_evaluate(cfg: AblationConfig, names: str | list[str], seed: int, paths: dict[str, Path]) -> list[dict]:
    """Train once for rows `names` (one training signature) with `seed`, then evaluate each row's eval
    prompt on normal and shuffled audio and write its result folder. Returns one scores dict per row."""
    names = [names] if isinstance(names, str) else list(names)
    if len({training_signature(cfg, n) for n in names}) != 1:
        raise ValueError(f"rows {names} do not share sources and training prompt; train them separately")
    first = names[0]
    run_dir = result_dir(cfg.out, first, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(seed, workers=True, verbose=False)
    module = SpeechLMModule(cfg.model, optim=cfg.train.optim, generation=cfg.train.generation)
    dm = build_datamodule(cfg, cfg.rows[first], seed, paths)
    dm.attach(module.tokenizer, module.audio_token_spec)
    logger = _logger(cfg, first, seed, run_dir)
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, precision="32-true", max_steps=cfg.train.steps, logger=logger,
        enable_checkpointing=False, limit_val_batches=0, num_sanity_val_steps=0, deterministic=True,
        gradient_clip_val=cfg.train.gradient_clip_val or None, log_every_n_steps=max(1, cfg.train.steps // 20),
        enable_model_summary=False, default_root_dir=str(run_dir), enable_progress_bar=False,
    )
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    print(f"ablate: {first} seed {seed} trained in {time.perf_counter() - t0:.0f} s", flush=True)
    dm.batching = replace(dm.batching, batch_size=cfg.train.eval_batch_size)
    module.eval()
    results = []
    for name in names:
        row_logger = logger if name == first else _logger(cfg, name, seed, result_dir(cfg.out, name, seed))
        results.append(_evaluate(cfg, name, seed, module, dm, row_logger, trained_by=first))
    return results


def _evaluate(cfg: AblationConfig, name: str, seed: int, module: SpeechLMModule, dm: MixtureDataModule,
              logger, trained_by: str) -> dict:
    row = cfg.rows[name]
    run_dir = result_dir(cfg.out, name, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    text = {"instruction": cfg.train.instruction} if cfg.train.instruction else {}
    dm.eval_prompt = replace(row.eval_prompt, **text)
    with torch.inference_mode():
        normal = _predict(module, dm, name, seed, cfg.data.eval_max_items, None)
        shuffled = _predict(module, dm, name, seed, cfg.data.eval_max_items, seed + SHUFFLE_OFFSET)
    write_predictions(run_dir / "predictions.jsonl", normal)
    write_predictions(run_dir / "predictions_shuffled.jsonl", shuffled)
    scores = {"row": name, "seed": seed, "oracle": row.is_oracle, "steps": cfg.train.steps,
              "trained_by": trained_by,
              "normal": mean_scores(normal), "shuffled": mean_scores(shuffled),
              "scorers": score_predictions(normal), "scorers_shuffled": score_predictions(shuffled)}
    if cfg.judge is not None:
        from paralm.runs.ablate_judge import judge_predictions

        for suffix in ("", "_shuffled"):
            scores[f"judge{suffix}"] = judge_predictions(cfg.judge, run_dir / f"predictions{suffix}.jsonl",
                                                         run_dir / f"judge{suffix}", seed)
    if logger:
        logger.log_metrics(flatten_metrics("test", {"normal": scores["normal"], "shuffled": scores["shuffled"]}))
        logger.experiment.finish()
    tmp = run_dir / (SCORES + ".tmp")
    tmp.write_text(json.dumps(scores, indent=2) + "\n")
    tmp.replace(run_dir / SCORES)
    return scores
