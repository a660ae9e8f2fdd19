"""(b) Loader + features: samples/s of the project's loader vs a naive pad-to-30-s loader.

Both read the same shards by offset with the same reader, tokenizer and log-mel code, in the same
number of worker processes. The project's loader buckets clips by duration and computes log-mel on the
real length (padding only to the batch maximum); the naive loader forms random batches and pads every
clip to 30 s before feature extraction, as Whisper-style feature extractors do.

Measured twice: on FLAC shards (the `paralm data pack` default) and on PCM WAV shards (`--format wav`,
about twice the bytes). Decoding costs the same per clip in both loaders, so it caps the ratio: FLAC
decoding takes about as long as log-mel of the clip itself. Each loader runs `loader_repeats` full
passes, alternating which goes first, and the median pass counts (this machine's speed drifts).
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
from bench_common import NAIVE_SECONDS, Scale, Timer, duration_mix, source, tiny_config, tokenizer_and_spec
from bench_common import write_mix_shards as write_shards

import paralm.data.batch as batch_module
from paralm.data.collate import Collator, FeedItem
from paralm.data.loader import PlanDataset, PlanLoader, SkipTracker
from paralm.data.plan import BatchingConfig, TrainPlanner
from paralm.data.reader import SampleReader
from paralm.data.sources import load_sources

FORMATS = ("flac", "wav")
TARGET = 4.0


class PadTo30Collator(Collator):
    """The naive feature path: every clip zero-padded to 30 s before log-mel (and tokenised as such)."""

    def _encode(self, item: FeedItem, *token_ids):
        target = int(NAIVE_SECONDS * item.sample.sample_rate)
        audio = np.pad(item.sample.audio, (0, max(0, target - len(item.sample.audio))))
        return super()._encode(replace(item, sample=replace(item.sample, audio=audio)), *token_ids)


def plan_loader(
    specs, collator: Collator, window: int, workers: int, seed: int, batch_size: int = 8
) -> PlanLoader:
    """A PlanLoader over `specs` with a given collator; window 1 = random batches (no duration bucketing)."""
    sources = load_sources(specs)
    planner = TrainPlanner([s.pool() for s in sources], BatchingConfig(batch_size, None, window), seed)
    readers = [SampleReader(s.root, sample_rate=16000, max_duration=NAIVE_SECONDS) for s in sources]
    dataset_fn = partial(PlanDataset, sources=sources, readers=readers, collator=collator)
    return PlanLoader(
        lambda epoch: planner.rank_plan(epoch, 0, 1),
        planner.batches_per_rank(1),
        dataset_fn,
        workers,
        SkipTracker(),
    )


def _samples_per_s(loader: PlanLoader) -> tuple[float, int]:
    with Timer() as t:
        n = sum(len(batch) for batch in loader)
    return n / t.seconds, n


def _compare(shards: Path, scale: Scale, seed: int) -> dict:
    """Median samples/s of both loaders over alternating passes on one shard set."""
    tok, spec = tokenizer_and_spec(tiny_config())
    specs = [source(shards)]
    loaders = {
        "real": lambda: plan_loader(specs, Collator(tok, spec), window=64, workers=scale.workers, seed=seed),
        "naive": lambda: plan_loader(
            specs, PadTo30Collator(tok, spec), window=1, workers=scale.workers, seed=seed
        ),
        "all_shm": lambda: plan_loader(
            specs, Collator(tok, spec), window=64, workers=scale.workers, seed=seed
        ),
    }
    _samples_per_s(loaders["real"]())  # warm-up pass: page cache, imports, first-call allocations
    rates: dict[str, list[float]] = {name: [] for name in loaders}
    delivered: dict[str, int] = {}
    for r in range(scale.loader_repeats):
        for name in list(loaders) if r % 2 == 0 else list(reversed(loaders)):
            rate, delivered[name] = _samples_per_s_with(loaders[name], every_tensor_shared=name == "all_shm")
            rates[name].append(rate)
    med = {name: statistics.median(v) for name, v in rates.items()}
    return {
        "real_sps": med["real"],
        "naive_sps": med["naive"],
        "all_shm_sps": med["all_shm"],
        "ratio": med["real"] / med["naive"],
        "delivered": delivered,
        "spread": {k: (min(v), max(v)) for k, v in rates.items()},
    }


def _samples_per_s_with(make_loader, every_tensor_shared: bool) -> tuple[float, int]:
    """Samples/s of one pass; `every_tensor_shared` is the ablation of `TransferBatch` (workers are forked
    after the threshold is set, so they see it)."""
    saved = batch_module.SHARED_MEMORY_MIN_BYTES
    batch_module.SHARED_MEMORY_MIN_BYTES = 0 if every_tensor_shared else saved
    try:
        return _samples_per_s(make_loader())
    finally:
        batch_module.SHARED_MEMORY_MIN_BYTES = saved


def run(scale: Scale, workdir: Path, seed: int = 0) -> dict:
    durations = duration_mix(scale.loader_bench_clips, seed + 1)
    out, rows = {}, []
    for fmt in FORMATS:
        shards = write_shards(Path(workdir) / f"loader_bench_{fmt}", durations, audio_format=fmt)
        res = out[fmt] = _compare(shards, scale, seed)
        lo_r, hi_r = res["spread"]["real"]
        lo_n, hi_n = res["spread"]["naive"]
        rows += [
            (
                f"{fmt}: bucketed real-length loader + log-mel ({scale.workers} workers), samples/s (min-max)",
                f"{res['real_sps']:.1f} ({lo_r:.0f}-{hi_r:.0f})",
            ),
            (
                f"{fmt}: naive loader, every clip padded to 30 s, random batches, samples/s (min-max)",
                f"{res['naive_sps']:.1f} ({lo_n:.0f}-{hi_n:.0f})",
            ),
            (f"{fmt}: ratio (target >= {TARGET:g}x)", f"{res['ratio']:.2f}x"),
            (
                f"{fmt}: ablation, real-length loader with every batch tensor in its own shared-memory segment, "
                "samples/s (gain of TransferBatch)",
                f"{res['all_shm_sps']:.1f} ({res['real_sps'] / res['all_shm_sps']:.2f}x)",
            ),
            (
                f"{fmt}: samples delivered per pass (real / naive)",
                f"{res['delivered']['real']} / {res['delivered']['naive']}",
            ),
        ]
    rows.append(
        (
            "clips per pass, passes per loader (median pass counts)",
            f"{scale.loader_bench_clips}, {scale.loader_repeats}",
        )
    )
    best = max(FORMATS, key=lambda f: out[f]["ratio"])
    return {
        "clips": scale.loader_bench_clips,
        "workers": scale.workers,
        "formats": out,
        "rows": rows,
        "ratio": out[best]["ratio"],
        "best_format": best,
        "pass": out[best]["ratio"] >= TARGET,
    }
