"""Turn a rank's planned batches into `Batch`es: read by offset in dataloader workers, collate, count skips.

Why a wrapper around DataLoader: the DataLoader sees a map-style dataset whose items are whole planned
batches and a sampler over plan positions (start..end), so with W workers, worker w reads positions
start + w, start + w + W, ... (i mod W = w from the start of an epoch) and the DataLoader still yields
batches in plan order; the order does not depend on W.
The wrapper (`PlanLoader`) builds the epoch's plan lazily when iteration starts, takes the skip reports
that come back with every batch and merges them into the main process' counters, and is not a
DataLoader instance, so Lightning leaves its sampler alone (no DistributedSampler is injected: the plan
already is per rank). Lightning calls `loader.sampler.set_epoch(e)` before every epoch.

Skips: a sample that fails to read is dropped from its batch and counted. If every sample of a batch
fails, the batch is filled with one stand-in read from the following plan positions (flagged
`is_pad` in `batch.meta`, not counted as delivered), so every rank still runs the same number of steps.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, Dataset

from paralm.data.batch import Batch, TransferBatch
from paralm.data.collate import Collator, FeedItem
from paralm.data.index import IndexRow
from paralm.data.plan import PlanItem
from paralm.data.reader import LoadedSample, SampleReader, SkipSample
from paralm.data.skips import SkipCounter, SkipRateExceeded
from paralm.data.sources import LoadedSource
from paralm.fault.orphans import WorkerInit, exit_if_orphaned

log = logging.getLogger(__name__)


@dataclass
class BatchReport:
    """What a worker found while reading one batch; merged into the main process' counters."""

    skips: SkipCounter = field(default_factory=SkipCounter)
    metadata_missing: int = 0


class PlanDataset(Dataset):
    """Item i = the i-th planned batch of this rank, read and collated: (Batch, BatchReport).

    Args:
        batches: this rank's batches for one epoch.
        sources: the sources plan items refer to (PlanItem.source indexes this list).
        readers: one SampleReader per source.
        collator: turns the decoded items into a Batch.
        per_clip: count skips and deliveries once per clip, not once per QA item (evaluation plans hold
            every question of a clip side by side; training draws items, each draw one attempt).
    """

    def __init__(
        self,
        batches: Sequence[Sequence[PlanItem]],
        sources: Sequence[LoadedSource],
        readers: Sequence[SampleReader],
        collator: Collator,
        per_clip: bool = False,
    ) -> None:
        self.batches = batches
        self.sources = sources
        self.readers = readers
        self.collator = collator
        self.per_clip = per_clip

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[Batch, BatchReport]:
        """Read and collate batch i. With `per_clip`, the items of one clip (one per QA pair) are counted
        once, and a clip that failed is not read again for its other questions."""
        report = BatchReport()
        items, failed, counted = [], set(), set()
        for planned in self.batches[i]:
            row, _ = self.sources[planned.source].item(planned.item)
            clip = (planned.source, row.key) if self.per_clip else None
            if clip in failed:
                continue
            item = self._read(planned, None if clip in counted else report.skips)
            if clip is not None:
                counted.add(clip)
            if item is None and clip is not None:
                failed.add(clip)
            elif item is not None:
                items.append(item)
        if not items:
            items = [self._stand_in(i)]
        batch, report.metadata_missing = self.collator.collate(items)
        return batch, report

    def _read(self, planned: PlanItem, skips: SkipCounter | None) -> FeedItem | None:
        source = self.sources[planned.source]
        row, qa = source.item(planned.item)
        if planned.is_pad:
            skips = None  # a filler copy of an item counted where it was planned
        try:
            sample = self.readers[planned.source].read(row)
        except SkipSample as err:
            if skips is not None:
                skips.add(err.reason, row.key, row.shard, err.detail)
            return None
        if skips is not None:
            skips.deliver()
        return FeedItem(sample, qa, source.name, is_pad=planned.is_pad)

    def _stand_in(self, i: int) -> FeedItem:
        """First readable item after batch i (wrapping), flagged is_pad; not counted a second time."""
        n = len(self.batches)
        for step in range(1, n + 1):
            for planned in self.batches[(i + step) % n]:
                item = self._read(planned, None)
                if item is not None:
                    item.is_pad = True
                    return item
        raise RuntimeError(
            f"no sample planned for this rank could be read ({n} batches); see the skip counters"
        )


class AudioSwapReader:
    """A reader that returns each clip's metadata and questions with another clip's audio.

    Why: scoring a model on swapped audio shows how much of its answer comes from what it hears rather
    than from the question and transcript priors. The pairing is a seeded cyclic shift of a shuffled
    order, so no clip keeps its own audio (when there are at least two) and the same seed gives the
    same pairs.

    Args:
        reader: the reader of the source.
        rows: every index row of the source's split (the pool audio is drawn from).
        seed: seed of the pairing.
    """

    def __init__(self, reader: SampleReader, rows: Sequence[IndexRow], seed: int) -> None:
        self.reader = reader
        order = np.random.default_rng(seed).permutation(len(rows))
        self.partner = {
            rows[int(order[i])].key: rows[int(order[(i + 1) % len(rows)])] for i in range(len(rows))
        }

    # everything that carries the sound: decoded audio, or cached encoder states and their sample count
    AUDIO_FIELDS = ("audio", "sample_rate", "encoder_states", "n_samples")

    def read(self, row: IndexRow) -> LoadedSample:
        sample = self.reader.read(row)
        donor = self.reader.read(self.partner[row.key])
        return replace(sample, **{f: getattr(donor, f) for f in self.AUDIO_FIELDS if hasattr(donor, f)})


class MetadataSwapReader:
    """A reader that gives each clip another clip's metadata cues, keeping its own audio and gold labels.

    Why: the permuted-metadata control. A model that reads the explicit metadata block answers from
    someone else's cues and drops towards chance; one that ignores the block does not move. The donor's
    labels go to `meta["cue_labels"]`, which only the prompt's metadata block reads
    (paralm/data/prompts.py `lookup_metadata`), so scoring still uses the clip's own gold labels. The
    pairing is the seeded cyclic shift of `AudioSwapReader` (no clip keeps its own cues).
    """

    def __init__(self, reader: SampleReader, rows: Sequence[IndexRow], seed: int) -> None:
        self.reader = reader
        self.partner = AudioSwapReader(reader, rows, seed).partner

    def read(self, row: IndexRow) -> LoadedSample:
        sample = self.reader.read(row)
        donor = self.reader.read(self.partner[row.key])
        meta = {**sample.meta, "cue_labels": donor.meta.get("labels") or {}, "cue_from": donor.key}
        return replace(sample, meta=meta)


class SkipTracker:
    """Main-process totals of skips and missing metadata, the skipped-keys file and the skip-rate guard.

    Args:
        max_skip_rate: stop when more than this share of attempted samples was skipped.
        skip_log_path: jsonl file of skipped keys (key, shard, reason, detail); None: not written.
        min_seen: attempts before the rate guard applies.
    """

    def __init__(
        self, max_skip_rate: float = 0.05, skip_log_path: str | Path | None = None, min_seen: int = 100
    ):
        self.counter = SkipCounter()
        self.metadata_missing = 0
        self.max_skip_rate = max_skip_rate
        self.skip_log_path = Path(skip_log_path) if skip_log_path else None
        self.min_seen = min_seen

    def absorb(self, report: BatchReport) -> None:
        self.counter.merge(report.skips)
        self.metadata_missing += report.metadata_missing
        try:
            self.counter.check_rate(self.max_skip_rate, min_seen=self.min_seen)
        except SkipRateExceeded as stop:
            self.flush()
            where = (f"skipped keys in {self.skip_log_path}" if self.skip_log_path
                     else "set data.skip_log_path to list the skipped keys")
            raise SkipRateExceeded(f"{stop}; {where}") from None
        except Exception:
            self.flush()
            raise

    def flush(self) -> None:
        if self.skip_log_path is not None:
            self.counter.write_skipped(self.skip_log_path)

    def stats(self) -> dict[str, int]:
        """Flat numbers for logging: seen, delivered, skipped, per-reason skips, missing metadata."""
        c = self.counter
        out = {
            "seen": c.seen,
            "delivered": c.delivered,
            "skipped": c.total,
            "metadata_missing": self.metadata_missing,
        }
        out.update({f"skip_{reason}": n for reason, n in c.nonzero().items()})
        return out

    def state_dict(self) -> dict:
        return {"skips": self.counter.state_dict(), "metadata_missing": self.metadata_missing}

    def load_state_dict(self, state: dict) -> None:
        self.counter.load_state_dict(state["skips"])
        self.metadata_missing = int(state.get("metadata_missing", 0))

    def restore(self, per_rank: list[dict], rank: int, world_size: int) -> None:
        """Load this rank's saved entry; after a change of world size rank 0 takes all totals."""
        if len(per_rank) == world_size:
            self.load_state_dict(per_rank[rank])
            return
        self.counter, self.metadata_missing = SkipCounter(), 0
        if rank == 0:
            for entry in per_rank:
                other = SkipTracker()
                other.load_state_dict(entry)
                self.counter.merge(other.counter)
                self.metadata_missing += other.metadata_missing


class PlanCursor:
    """The loader's position: current epoch, batches yielded in it, and a pending resume point.

    Exposed as `PlanLoader.sampler` so Lightning's per-epoch `sampler.set_epoch(e)` reaches it.
    """

    def __init__(self) -> None:
        self.epoch = 0
        self.position = 0
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def resume(self, epoch: int, position: int) -> None:
        """The next iteration of `epoch` starts at batch `position` (other epochs start at 0)."""
        self.epoch = int(epoch)
        self._resume = (int(epoch), int(position))

    def take_start(self) -> int:
        start = self._resume[1] if self._resume and self._resume[0] == self.epoch else 0
        self._resume = None
        self.position = start
        return start


def _passthrough(x):
    return x


class _WorkerSide(Dataset):
    """The dataset as worker processes see it: batches packed for the trip to the main process.

    Before each batch a worker checks that the process that started it is still its parent (see
    paralm/fault/orphans.py; the death signal armed in `WorkerInit` is the first line of defence).
    """

    def __init__(self, dataset: PlanDataset) -> None:
        self.dataset = dataset
        self.parent_pid = os.getpid()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[TransferBatch, BatchReport]:
        exit_if_orphaned(self.parent_pid)
        batch, report = self.dataset[i]
        return TransferBatch.pack(batch), report


class PlanLoader:
    """Iterable of `Batch` over this rank's plan for the current epoch.

    Args:
        plan_fn: epoch -> this rank's batches (called when iteration starts).
        length: batches per epoch (what Lightning reads from len()).
        dataset_fn: batches -> PlanDataset.
        num_workers: dataloader worker processes (0: read in the main process).
        tracker: where skip reports go.
        prefetch_factor: batches each worker reads ahead.
    """

    def __init__(
        self,
        plan_fn: Callable[[int], list[list[PlanItem]]],
        length: int,
        dataset_fn: Callable[[list[list[PlanItem]]], PlanDataset],
        num_workers: int,
        tracker: SkipTracker,
        prefetch_factor: int = 2,
    ) -> None:
        self.plan_fn = plan_fn
        self.length = int(length)
        self.dataset_fn = dataset_fn
        self.num_workers = int(num_workers)
        self.tracker = tracker
        self.prefetch_factor = prefetch_factor
        self.sampler = PlanCursor()
        self.batch_sampler = None  # Lightning inspects both attributes; batches come from the plan

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[Batch]:
        return self._run()

    def _run(self) -> Iterator[Batch]:
        # a generator: the epoch and start position are read at the first next(), after set_epoch
        cursor = self.sampler
        epoch, start = cursor.epoch, cursor.take_start()
        batches = self.plan_fn(epoch)
        if start >= len(batches):  # a position at the end means that epoch was finished
            start = cursor.position = 0
        workers = self.num_workers if len(batches) - start > 1 else 0
        dataset = self.dataset_fn(batches)
        loader = DataLoader(
            _WorkerSide(dataset) if workers else dataset,
            batch_size=None,
            sampler=range(start, len(batches)),
            num_workers=workers,
            collate_fn=_passthrough,
            prefetch_factor=self.prefetch_factor if workers else None,
            worker_init_fn=WorkerInit() if workers else None,  # workers die with this process
        )
        finished = False
        try:
            for batch, report in loader:
                if isinstance(batch, TransferBatch):
                    batch = batch.unpack()
                self.tracker.absorb(report)
                cursor.position += 1
                yield batch
            finished = True
        finally:
            self.tracker.flush()
            log.info("data epoch %d: %s", epoch, self.tracker.counter.summary())
        if finished and cursor.epoch == epoch:
            cursor.set_epoch(epoch + 1)

    def state_dict(self) -> dict:
        """Empty on purpose: resume state lives in `MixtureDataModule.state_dict` (read from the trainer's
        batch progress, so batches fetched ahead but not trained on do not count). Having the method
        tells Lightning this loader resumes mid-epoch."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """See `state_dict`: the datamodule restores the position."""
