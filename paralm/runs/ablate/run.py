"""Train (through `paralm fit`, paralm/runs/ablate/fit.py) and evaluate one (row, seed) of an ablation.

    runs/<row>-seed<k>/                               the `paralm fit` run folder (checkpoints, config.yaml)
    results/<row>/seed<k>/predictions.jsonl           test answers with the row's eval prompt
    results/<row>/seed<k>/predictions_shuffled.jsonl  the same questions, each clip given another's audio
    results/<row>/seed<k>/predictions_permuted.jsonl  rows with a metadata block, CP and DP items: each clip shown
                                                      another clip's cues (its own audio); `extra.cue_emotion` says which
    results/<row>/seed<k>/scores.json                 per-subset metric means of each condition and of the
                                                      reference levels floor and chance (+ scorer summary)
    results/<row>/seed<k>/judge[_shuffled]/           LLM judge output, when a judge is configured

`scores.json` is written last (atomically), so its presence marks a finished pair and a rerun skips
it. Every row gets the same Trainer settings (steps, batch, schedule, clip) for a given seed; only
sources and prompts differ, which is what makes the rows comparable.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from paralm.atomic_files import atomic_write_text
from paralm.data.datamodule import MixtureDataModule
from paralm.data.prompts import lookup_metadata
from paralm.data.sources import SourceSpec
from paralm.eval.generation import generate_rows
from paralm.eval.scorers import score_predictions
from paralm.formats.predictions import PredictionRow, write_predictions
from paralm.lit_module import SpeechLMModule
from paralm.runs.ablate.config import SOURCE_KINDS, AblationConfig, RowSpec, cache_root
from paralm.runs.ablate.fit import base_trainer, train
from paralm.runs.ablate.metrics import DERIVED, mean_scores

log = logging.getLogger(__name__)
SCORES = "scores.json"
SHUFFLE_OFFSET = 10_007  # shuffled-audio pairing seed = run seed + offset (the same for every row)
PERMUTE_OFFSET = 20_011  # permuted-metadata pairing seed = run seed + offset (the same for every row)
# The metadata block is about how something is said: the permuted-metadata control scores the CP and DP
# items (its drop is reported on cp_mention and dp_acc); content questions would only cost time.
PERMUTED_TYPES = ("CP", "DP")
CONDITION_FILES = {"normal": "predictions.jsonl", "shuffled": "predictions_shuffled.jsonl",
                   "permuted": "predictions_permuted.jsonl"}


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
    return str(cache_root(cfg) / "features")


def _subsample_test(dm: MixtureDataModule, n: int) -> None:
    """Keep a seeded random subset of n test items (seed fixed, so every row and seed sees the same items)."""
    source = dm.sources("test")[0]
    if n < len(source.items):
        keep = np.sort(np.random.default_rng(0).choice(len(source.items), size=n, replace=False))
        source.items = source.items[keep]


def _predict(module: SpeechLMModule, dm: MixtureDataModule, name: str, seed: int, max_items: int | None,
             shuffle_seed: int | None = None, permute_seed: int | None = None) -> list[PredictionRow]:
    """Answers of the module for the test items; each row records the emotion its metadata block showed
    (`extra.cue_emotion`), from which the permuted-metadata chance level is computed."""
    loader = dm.generation_dataloader("test", shuffle_audio_seed=shuffle_seed, permute_metadata_seed=permute_seed)
    shown: dict[tuple, str | None] = {}

    def generate(batch):
        for key, question, meta in zip(batch.keys, batch.questions, batch.meta, strict=False):
            cues = lookup_metadata(meta, dm.eval_prompt.metadata) if dm.eval_prompt.uses_metadata else None
            shown[(key, question)] = (cues or {}).get("emotion")
        return module.generate(batch)

    rows = generate_rows(generate, loader, to_device=lambda b: b.to(module.device), max_samples=max_items,
                         system=name, seed=seed, row=name)
    for r in rows:
        r.extra["cue_emotion"] = shown.get((r.key, r.question))
    return rows


def training_signature(cfg: AblationConfig, name: str) -> str:
    """Rows with equal sources and training prompt train the same model (e.g. explicit and its oracle)."""
    row = cfg.rows[name]
    return json.dumps({"sources": row.sources, "train_prompt": asdict(row.train_prompt)}, sort_keys=True)


def train_and_evaluate(cfg: AblationConfig, names: str | list[str], seed: int, paths: dict[str, Path],
                       evaluate: list[str] | None = None) -> list[dict]:
    """Train once for rows `names` (one training signature) with `seed` through `paralm fit`
    (paralm/runs/ablate/fit.py), then evaluate each row's eval prompt on normal audio, shuffled audio and
    (explicit rows) permuted metadata, and write its result folder. Returns one scores dict per row."""
    names = [names] if isinstance(names, str) else list(names)
    if len({training_signature(cfg, n) for n in names}) != 1:
        raise ValueError(f"rows {names} do not share sources and training prompt; train them separately")
    first = names[0]
    t0 = time.perf_counter()
    ckpt = train(cfg, first, seed, paths)
    print(f"ablate: {first} seed {seed} trained in {time.perf_counter() - t0:.0f} s", flush=True)
    module = evaluation_module(cfg, ckpt)
    dm = build_datamodule(cfg, cfg.rows[first], seed, paths)
    dm.attach(module.tokenizer, module.audio_token_spec)
    if dm.feature_cache:
        from paralm.feature_store_fill import AUTOCAST_BY_PRECISION, ensure_feature_cache

        autocast = AUTOCAST_BY_PRECISION.get(str(base_trainer(cfg).get("precision")))
        dm.attach_feature_store(ensure_feature_cache(module.net, dm.specs["test"], dm.feature_cache,
                                                     device=module.device, autocast_dtype=autocast))
    dm.batching = replace(dm.batching, batch_size=cfg.train.eval_batch_size)
    return [_evaluate(cfg, name, seed, module, dm, trained_by=first) for name in (evaluate or names)]


def evaluation_module(cfg: AblationConfig, ckpt: Path) -> SpeechLMModule:
    """The trained weights loaded as `paralm predict` loads them (`load_for_prediction`), on the device
    the base config trains on when it is available."""
    from paralm.dataclass_io import from_dict
    from paralm.fault.checkpoint_io import load_verified
    from paralm.model.config import SpeechLMConfig
    from paralm.predict import check_same_tokenizer, load_for_prediction

    trained = from_dict(SpeechLMConfig, load_verified(ckpt)["hyper_parameters"]["model"])  # as trained (fit_configs)
    module = SpeechLMModule(trained, optim=cfg.train.optim, generation=cfg.train.generation)
    loaded = load_for_prediction(ckpt, trained)
    check_same_tokenizer(loaded.model, module.tokenizer)
    module.net = loaded.model
    if torch.cuda.is_available() and str(base_trainer(cfg).get("accelerator", "auto")) in ("gpu", "cuda", "auto"):
        module.to("cuda")
    return module.eval()




@contextmanager
def _only_types(dm: MixtureDataModule, types: tuple[str, ...] | None):
    """Evaluate only the test items of these question types (None: all), then restore the full set."""
    source = dm.sources("test")[0]
    kept = source.items
    if types is not None:
        source.items = kept[[source.item(i)[0].qa_types[source.item(i)[1]] in types for i in range(len(kept))]]
    try:
        yield
    finally:
        source.items = kept


def _evaluate(cfg: AblationConfig, name: str, seed: int, module: SpeechLMModule, dm: MixtureDataModule,
              trained_by: str) -> dict:
    row = cfg.rows[name]
    run_dir = result_dir(cfg.out, name, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    text = {"instruction": cfg.train.instruction} if cfg.train.instruction else {}
    dm.eval_prompt = replace(row.eval_prompt, **text)
    conditions = {"normal": {}, "shuffled": {"shuffle_seed": seed + SHUFFLE_OFFSET}}
    if dm.eval_prompt.uses_metadata:
        conditions["permuted"] = {"permute_seed": seed + PERMUTE_OFFSET}
    scores = {"row": name, "seed": seed, "oracle": row.is_oracle, "steps": cfg.train.steps, "trained_by": trained_by,
              "instruction": dm.eval_prompt.instruction}
    with torch.inference_mode():
        for cond, kwargs in conditions.items():
            with _only_types(dm, PERMUTED_TYPES if cond == "permuted" else None):
                preds = _predict(module, dm, name, seed, cfg.data.eval_max_items, **kwargs)
            write_predictions(run_dir / CONDITION_FILES[cond], preds)
            scores[cond] = mean_scores(preds)
            scores["scorers" if cond == "normal" else f"scorers_{cond}"] = score_predictions(preds)
            for level, (source, pair) in DERIVED.items():  # reference levels, as the report computes them
                if source == cond:
                    scores[level] = mean_scores(pair(preds))
    if cfg.judge is not None:
        from paralm.runs.ablate.judge import judge_predictions

        for suffix in ("", "_shuffled"):
            scores[f"judge{suffix}"] = judge_predictions(cfg.judge, run_dir / f"predictions{suffix}.jsonl",
                                                         run_dir / f"judge{suffix}", seed)
    atomic_write_text(run_dir / SCORES, json.dumps(scores, indent=2) + "\n")
    return scores
