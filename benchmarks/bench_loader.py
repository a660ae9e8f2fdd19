"""(b) Loader + features: samples/s of the project's loader vs a naive pad-to-30-s loader.

Both read the same FLAC shards by offset with the same reader, tokenizer and log-mel code, in the same
number of worker processes. The project's loader buckets clips by duration and computes log-mel on the
real length (padding only to the batch maximum); the naive loader forms random batches and pads every
clip to 30 s before feature extraction, as Whisper-style feature extractors do.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
from bench_common import NAIVE_SECONDS, Scale, Timer, duration_mix, source, tiny_config, tokenizer_and_spec
from bench_common import write_mix_shards as write_shards

from paralm.data.collate import Collator, FeedItem
from paralm.data.loader import PlanDataset, PlanLoader, SkipTracker
from paralm.data.plan import BatchingConfig, TrainPlanner
from paralm.data.reader import SampleReader
from paralm.data.sources import load_sources


class PadTo30Collator(Collator):
    """The naive feature path: every clip zero-padded to 30 s before log-mel (and tokenised as such)."""

    def _encode(self, item: FeedItem):
        target = int(NAIVE_SECONDS * item.sample.sample_rate)
        audio = np.pad(item.sample.audio, (0, max(0, target - len(item.sample.audio))))
        return super()._encode(replace(item, sample=replace(item.sample, audio=audio)))


def plan_loader(specs, collator: Collator, window: int, workers: int, seed: int, batch_size: int = 8) -> PlanLoader:
    """A PlanLoader over `specs` with a given collator; window 1 = random batches (no duration bucketing)."""
    sources = load_sources(specs)
    planner = TrainPlanner([s.pool() for s in sources], BatchingConfig(batch_size, None, window), seed)
    readers = [SampleReader(s.root, sample_rate=16000, max_duration=NAIVE_SECONDS) for s in sources]
    dataset_fn = partial(PlanDataset, sources=sources, readers=readers, collator=collator)
    return PlanLoader(lambda epoch: planner.rank_plan(epoch, 0, 1), planner.batches_per_rank(1), dataset_fn,
                      workers, SkipTracker())


def _samples_per_s(loader: PlanLoader) -> tuple[float, int]:
    with Timer() as t:
        n = sum(len(batch) for batch in loader)
    return n / t.seconds, n


def run(scale: Scale, workdir: Path, seed: int = 0) -> dict:
    shards = write_shards(Path(workdir) / "loader_shards", duration_mix(scale.loader_clips, seed + 1))
    tok, spec = tokenizer_and_spec(tiny_config())
    specs = [source(shards)]
    real = plan_loader(specs, Collator(tok, spec), window=64, workers=scale.workers, seed=seed)
    naive = plan_loader(specs, PadTo30Collator(tok, spec), window=1, workers=scale.workers, seed=seed)
    real_rate, n_real = _samples_per_s(real)
    naive_rate, n_naive = _samples_per_s(naive)
    ratio = real_rate / naive_rate
    return {
        "clips": scale.loader_clips, "workers": scale.workers, "real_sps": real_rate, "naive_sps": naive_rate,
        "ratio": ratio,
        "rows": [
            (f"bucketed real-length loader + log-mel ({scale.workers} workers), samples/s", f"{real_rate:.1f}"),
            ("naive loader, every clip padded to 30 s, random batches, samples/s", f"{naive_rate:.1f}"),
            ("ratio (target >= 4x)", f"{ratio:.2f}x"),
            ("samples delivered (real / naive)", f"{n_real} / {n_naive}"),
        ],
        "pass": ratio >= 4.0,
    }
