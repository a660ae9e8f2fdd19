"""Derived data of an ablation, made once into a cache folder and shared by every row and seed.

    general corpus ──annotate (fitted on train gold, K-fold out-of-fold on train)──> annotated
    annotated ──template generation from labels──────────────> implicit  (implicit pairs only)
    annotated ──template generation from permuted labels─────> control   (implicit pairs only)

Why keep only the generated pairs in implicit/control: the generator appends its pairs to each clip's
existing QA, and a source of both would give implicit rows a second copy of the general data. With
the generated pairs alone, `general + implicit` differs from `general` only by what the row is
about. Every stage writes into a new folder and is skipped when that folder is complete, so an
interrupted preparation resumes; the cache key holds every setting that changes the output.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from paralm.atomic_files import atomic_write_text, replace_durably
from paralm.creation.annotate import FitPlan, annotate
from paralm.creation.generate.command import generate
from paralm.creation.generate.config import GenerateConfig
from paralm.creation.stage import StageSample, run_stage
from paralm.runs.ablate.config import DataSettings

DONE = "stage_done.json"


def cache_key(data: DataSettings, general_index: Path) -> str:
    """Short hash of the derivation settings and the corpus index (a changed corpus gets a new cache)."""
    doc = {k: v for k, v in asdict(data).items() if k not in ("eval_max_items", "cache")}
    doc["index_sha"] = hashlib.sha256(general_index.read_bytes()).hexdigest()
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]


def _index_file(shards: Path) -> Path:
    found = sorted(shards.glob("index*.json*"))
    if not found:
        raise FileNotFoundError(f"no shard index under {shards}; build the corpus first (see data/demo/README.md)")
    return found[0]


def _generated_only(batch: list[StageSample], counts: Counter) -> list[StageSample]:
    """Keep only the QA pairs a generator wrote (they carry a `generator` record)."""
    out = []
    for sample in batch:
        qa = [p for p in sample.meta.get("qa", []) if "generator" in p]
        if qa:
            sample.meta["qa"] = qa
            out.append(sample)
        else:
            counts["no_generated_pairs"] += 1
    return out


def _once(out: Path, make) -> Path:
    """Run `make(tmp)` unless `out` is complete; the result appears at `out` only when finished."""
    if (out / DONE).exists():
        return out
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    make(tmp)
    atomic_write_text(tmp / DONE, json.dumps({"stage": out.name}) + "\n")
    replace_durably(tmp, out)
    return out


def _generate_pairs(src: Path, out: Path, data: DataSettings, permute: int | None) -> Path:
    def make(tmp: Path) -> None:
        cfg = GenerateConfig(backend="template", labels=data.implicit_labels, permute_labels=permute,
                             seed=data.generator_seed, state=str(tmp.parent / f"{out.name}.state"))
        full = tmp.parent / f"{out.name}.full"
        report = generate(src, full, cfg, quiet=True)
        if report.get("clips", {}).get("unfinished"):
            raise RuntimeError(f"generation into {full} left clips unfinished; see {cfg.state}")
        run_stage(full, tmp, "select_generated", _generated_only, record={"keep": "generated pairs only"},
                  sample_rate=None, quiet=True)

    return _once(out, make)


def prepare(data: DataSettings, cache_root: str | Path) -> dict[str, Path]:
    """Build (or reuse) the derived sources; returns source name -> shard folder."""
    general = Path(data.general)
    root = Path(cache_root) / cache_key(data, _index_file(general))
    root.mkdir(parents=True, exist_ok=True)
    plan = FitPlan(train_split="train", folds=data.folds, seed=0)
    annotated = _once(root / "annotated",
                      lambda tmp: annotate(general, tmp, [data.annotator], device="cpu", plan=plan, quiet=True))
    return {
        "general": annotated,
        "implicit": _generate_pairs(annotated, root / "implicit", data, None),
        "control": _generate_pairs(annotated, root / "control", data, data.permute_seed),
    }
