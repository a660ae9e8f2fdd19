"""Training batches from an unindexed shard set: `mode: streaming` on a train source.

Why: some corpora are too large (or too often re-published) to index, and `paralm/data/streaming.py`
already reads such shards safely (explicit decoders, counted skips, `pipe:` refused). This module puts a
Lightning-facing loader on top, so a config reaches it:

    data:
      train_sources:
        - {name: web, path: /data/web-shards, kind: general, mode: streaming}
      samples_per_epoch: 100000

What holds (and what only the indexed mode gives; docs/data.md has the table):
  * every rank runs the same number of batches per epoch: ceil(samples_per_epoch / world / batch_size),
    whatever is skipped (the stream is resampled and read until the batches are full), so DDP never hangs;
  * each delivered clip gives one of its QA pairs (chosen from the clip key, the epoch and the seed);
    clips without QA give none, as in the indexed mode;
  * shards are drawn with replacement, samples are not duration-bucketed, and the order depends on the
    worker count; a resumed run restarts the epoch's stream instead of continuing mid-epoch.
Refused with a clear message, because they need the index: streaming val/test sources, mixing streaming
and indexed train sources, more than one streaming source, `implicit_ratio`, `max_batch_seconds` and a
feature cache. Staging folders and shards of an unfinished writer are never read.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterator
from pathlib import Path

from torch.utils.data import DataLoader

from paralm.data.batch import Batch
from paralm.data.collate import Collator, FeedItem
from paralm.data.loader import BatchReport, PlanCursor, SkipTracker
from paralm.data.reader import LoadedSample
from paralm.data.skips import SkipCounter
from paralm.data.sources import SourceSpec
from paralm.data.staging import is_leftover, leftovers
from paralm.data.streaming import StreamingConfig, StreamingDataset
from paralm.fault.orphans import WorkerInit

log = logging.getLogger(__name__)
MAX_BARREN_SAMPLES = 10_000  # delivered clips in a row without a QA pair before the loader gives up


def check_stream_modes(specs: dict[str, list[SourceSpec]], implicit_ratio, samples_per_epoch, batch_size,
                       max_batch_seconds, feature_cache) -> None:
    """Refuse configurations that streaming cannot honour (see the module docstring); ValueError names why."""
    for stage in ("val", "test"):
        streamed = [s.name for s in specs.get(stage, []) if s.mode == "streaming"]
        if streamed:
            raise ValueError(f"{stage} source(s) {streamed} use mode: streaming, but evaluation reads every item "
                             "exactly once across ranks, which needs the index: run `paralm data index` on them")
    train = specs.get("train", [])
    streamed = [s.name for s in train if s.mode == "streaming"]
    if not streamed:
        return
    why = None
    if len(streamed) != len(train):
        why = (f"mixes streaming {streamed} with indexed {[s.name for s in train if s.mode != 'streaming']}; the "
               "mixture planner needs every source's index (index the streamed ones, or stream a single source)")
    elif len(streamed) > 1:
        why = f"streams {len(streamed)} sources {streamed}; streaming mode reads one source per run"
    elif implicit_ratio is not None:
        why = "sets implicit_ratio, which splits planned mass by source kind; a single streamed source has no mix"
    elif not samples_per_epoch:
        why = "has no samples_per_epoch; a stream has no length, so an epoch must be given in samples"
    elif batch_size is None or max_batch_seconds is not None:
        why = "needs a fixed batch_size and no max_batch_seconds (streamed clips are not duration-bucketed)"
    elif feature_cache is not None:
        why = "sets feature_cache, which is filled from the index"
    if why:
        raise ValueError(f"train_sources {why}")


def published_shards(path: str) -> list[str]:
    """The shard files of a published set (a folder or one brace pattern); writers' leftovers refused."""
    folder = Path(path)
    if folder.is_dir():
        if is_leftover(folder.name) or leftovers(folder):
            raise ValueError(f"streaming source {path} is being written (staging folder or partial shard "
                             "present); stream only published shard sets")
        shards = sorted(str(p) for p in folder.glob("*.tar") if not is_leftover(p.name))
        if not shards:
            raise ValueError(f"streaming source {path}: no .tar shards in the folder")
        return shards
    return [path]


def qa_choice(key: str, n_qa: int, seed: int, epoch: int) -> int:
    """Which QA pair of a clip is used this epoch: a hash of (seed, epoch, key), the same on every worker count."""
    digest = hashlib.sha256(f"{seed}:{epoch}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % n_qa


class _Counts:
    """Skip counts of the stream since the last batch was handed to the tracker."""

    def __init__(self) -> None:
        self.counter = SkipCounter()

    def collect(self, items) -> Iterator[LoadedSample]:
        """`streaming.collect_skips`, counting into whichever counter is current when each item arrives."""
        for item in items:
            self.counter.extend(item.skipped)
            if isinstance(item, LoadedSample):
                self.counter.deliver()
                yield item

    def take(self) -> SkipCounter:
        out, self.counter = self.counter, SkipCounter()
        return out


class StreamLoader:
    """Iterable of `Batch` for one streamed train source; `len()` batches per epoch on every rank.

    Args:
        spec: the streamed source.
        collator: turns decoded items into a Batch.
        tracker: where skip counts go (the datamodule's train tracker).
        batch_size: items per batch.
        samples_per_epoch: items drawn per epoch over all ranks.
        rank, world: this rank and the number of ranks.
        seed: stream seed (epoch and rank are mixed in by the streaming pipeline).
        num_workers: decoding worker processes.
        sample_rate, min_duration, max_duration: what a usable clip is.
    """

    def __init__(self, spec: SourceSpec, collator: Collator, tracker: SkipTracker, batch_size: int,
                 samples_per_epoch: int, rank: int, world: int, seed: int, num_workers: int,
                 sample_rate: int, min_duration: float, max_duration: float | None) -> None:
        self.spec, self.collator, self.tracker = spec, collator, tracker
        self.batch_size, self.seed, self.num_workers = int(batch_size), int(seed), int(num_workers)
        self.length = max(1, math.ceil(samples_per_epoch / world / self.batch_size))
        self.config = StreamingConfig(
            shards=published_shards(spec.path), resampled=True, epoch_samples=10**12, seed=self.seed,
            sample_rate=sample_rate, min_duration=min_duration, max_duration=max_duration)
        self.sampler = PlanCursor()  # Lightning calls sampler.set_epoch(e); the datamodule calls resume()
        self.batch_sampler = None

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[Batch]:
        return self._run()

    def _items(self, epoch: int, counts: _Counts) -> Iterator[FeedItem]:
        dataset = StreamingDataset(self.config)
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=None, num_workers=self.num_workers,
                            worker_init_fn=WorkerInit() if self.num_workers else None)  # no orphaned workers
        barren = 0
        for sample in counts.collect(loader):
            item = self._item(sample, epoch)
            barren = 0 if item is not None else barren + 1
            if barren >= MAX_BARREN_SAMPLES:
                raise ValueError(f"streaming source {self.spec.name!r}: {barren} clips in a row without a QA "
                                 "pair; generate QA first (`paralm data generate`)")
            if item is not None:
                yield item

    def _item(self, sample: LoadedSample, epoch: int) -> FeedItem | None:
        qa = sample.meta.get("qa") or []
        if not qa:
            return None
        return FeedItem(sample, qa_choice(sample.key, len(qa), self.seed, epoch), self.spec.name)

    def _run(self) -> Iterator[Batch]:
        cursor = self.sampler
        epoch, start = cursor.epoch, cursor.take_start()
        if start:
            log.warning("streaming source %r: resuming restarts epoch %d's stream (batch %d was reached); only "
                        "indexed sources resume exactly", self.spec.name, epoch, start)
        cursor.position = 0
        counts = _Counts()
        items = self._items(epoch, counts)
        try:
            for _ in range(self.length):
                chunk = [next(items) for _ in range(self.batch_size)]
                batch, missing = self.collator.collate(chunk)
                self.tracker.absorb(BatchReport(counts.take(), missing))
                cursor.position += 1
                yield batch
        finally:
            items.close()
            self.tracker.flush()
            log.info("data epoch %d (streaming): %s", epoch, self.tracker.counter.summary())
        if cursor.epoch == epoch:
            cursor.set_epoch(epoch + 1)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Resume state lives in the datamodule (see `_run` for what a streamed resume does)."""
