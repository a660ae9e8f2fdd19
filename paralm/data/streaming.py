"""Streaming mode: a webdataset pipeline for shard sets too large to index.

Pipeline: shard list (resampled with replacement, or each shard once) -> `wds.split_by_node` ->
`wds.split_by_worker` -> our own tar scan + decode stage (explicit decoders only: soundfile and
json; no pickle, no torchaudio; `pipe:` URLs refused unless allowed) -> optional sample shuffle
buffer -> `.with_epoch(n)` in resampled mode. Skips are counted by reason by `CountingHandler`,
never with `warn_and_continue` (which sleeps and counts nothing).

Ordering guarantee (weaker than the indexed plan, read this before choosing streaming):
  * resampled=True: every rank delivers exactly `epoch_samples` samples per epoch (`with_epoch`
    on delivered samples only, split over workers), so batch counts per rank match; the sequence
    is deterministic for a given (seed, epoch, rank, worker, num_workers) but changes with the
    worker count, shards are drawn with replacement (an epoch may repeat some samples and miss
    others), and a resumed run restarts the epoch's stream instead of continuing mid-epoch.
  * resampled=False: each shard is read once per epoch and split over ranks and workers by shard,
    so ranks see disjoint samples but not equal counts (unsafe for DDP training; meant for
    counting, verification and single-process evaluation).
  * duplicate keys are detected within one worker's pass (resampled=False) or within one drawn
    shard (resampled=True, where redrawing a shard is expected); the indexed path sees them all.

Skip counts leave dataloader workers with the data: each `LoadedSample.skipped` holds the skips
seen since the previous delivered sample; in resampled=False mode skips after a worker's last
sample arrive as a final `SkipReport`. Pass the stream through `collect_skips` to count them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import webdataset as wds
from webdataset.utils import make_seed, pytorch_worker_info

from paralm.data.index import INDEX_NAME, ShardIndex, escapes
from paralm.data.reader import DecodeOptions, LoadedSample, SkipSample, decode_sample, refuse_pipe
from paralm.data.shards import RawSample, scan_shard
from paralm.data.skips import SkipCounter, SkipRecord


@dataclass
class StreamingConfig:
    """A streamed shard source.

    Args:
        shards: a shard-set directory (the shards its index.json lists; without an index, every visible
            *.tar, sorted; leftovers of killed writers are never read), a brace pattern
            ("d/shard-{000000..000009}.tar"), or a list of paths / URLs.
        resampled: draw shards with replacement forever and cut epochs with `epoch_samples`
            (training); False reads each shard once per epoch.
        epoch_samples: samples every rank delivers per epoch; required when resampled.
        shard_shuffle: shuffle the shard order per epoch (resampled=False; resampling is random anyway).
        sample_shuffle: sample shuffle buffer size per worker; 0 = off.
        seed: base seed; epoch, rank and worker are mixed in.
        sample_rate: output sample rate in Hz.
        min_duration: shorter clips are skipped (too_short).
        max_duration: longer clips are skipped (too_long); None = no limit.
        require_transcript: skip samples with an empty transcript.
        allow_unsafe: allow `pipe:` URLs (they run a shell command).
    """

    shards: str | list[str]
    resampled: bool = True
    epoch_samples: int | None = None
    shard_shuffle: bool = True
    sample_shuffle: int = 0
    seed: int = 0
    sample_rate: int = 16000
    min_duration: float = 0.0
    max_duration: float | None = None
    require_transcript: bool = True
    allow_unsafe: bool = False


@dataclass
class SkipReport:
    """Skips a worker saw after its last delivered sample (resampled=False only)."""

    skipped: tuple[SkipRecord, ...] = field(default_factory=tuple)


def folder_shards(folder: Path) -> list[str]:
    """The shards of a folder: those its index lists (when it has one), else every visible `*.tar`.

    Why the index first: a folder may still hold complete shards of an older, killed writer; only the
    published index says which shards belong to the set. Without an index, hidden names (`.NAME.partial-PID`
    of a killed writer, staging folders) are never read, and neither is an index path leaving the folder.
    """
    if (folder / INDEX_NAME).is_file():
        rows = ShardIndex.load(folder).shards
        bad = [r.path for r in rows if "://" in r.path or r.path.startswith("pipe:") or escapes(folder, r.path)]
        if bad:
            raise ValueError(f"{folder / INDEX_NAME}: shard {bad[0]!r} is not a file inside the index folder")
        return [str(folder / r.path) for r in rows]
    return sorted(str(p) for p in folder.glob("*.tar") if not p.name.startswith(".") and p.is_file())


def shard_urls(shards: str | list[str], allow_unsafe: bool = False) -> list[str]:
    """Expand a directory, brace pattern or list into shard URLs, refusing `pipe:` unless allowed."""
    if isinstance(shards, (str, os.PathLike)) and Path(shards).is_dir():
        urls = folder_shards(Path(shards))
    elif isinstance(shards, str):
        urls = wds.shardlists.expand_urls(shards)
    else:
        urls = [str(s) for s in shards]
    if not urls:
        raise ValueError(f"no shards found in {shards!r}")
    for url in urls:
        refuse_pipe(url, allow_unsafe)
    return urls


def open_shard(url: str, allow_unsafe: bool):
    refuse_pipe(url, allow_unsafe)
    if "://" in url or url.startswith("pipe:"):
        return wds.gopen(url, "rb")
    return open(url, "rb")


class CountingHandler:
    """Turns per-sample failures into skip records (the stream goes on) and re-raises anything else."""

    def __init__(self) -> None:
        self.pending: list[SkipRecord] = []

    def __call__(self, exc: Exception, key: str, shard: str) -> bool:
        if isinstance(exc, SkipSample):
            self.pending.append(SkipRecord(key, shard, exc.reason, exc.detail))
        elif isinstance(exc, OSError):
            self.pending.append(SkipRecord(key, shard, "truncated_shard", f"cannot read shard: {exc}"))
        else:
            raise exc
        return True

    def take(self) -> tuple[SkipRecord, ...]:
        out, self.pending = tuple(self.pending), []
        return out


def _decode_stage(opts: DecodeOptions, allow_unsafe: bool, finite: bool, max_barren: int):
    """Pipeline stage: {url} dicts -> LoadedSample (with pending skips attached) [-> SkipReport].

    Resampling draws forever, so a set with no readable sample would spin silently; after
    `max_barren` shards in a row without a sample the stage raises instead.
    """

    def stage(sources: Iterable[dict]) -> Iterator[LoadedSample | SkipReport]:
        handler, seen_keys, barren = CountingHandler(), set(), 0
        for source in sources:
            url, delivered = source["url"], 0
            try:
                with open_shard(url, allow_unsafe) as stream:
                    for item in scan_shard(stream, url, seen_keys if finite else set()):
                        sample = _decode(item, opts, handler)
                        if sample is not None:
                            sample.skipped, delivered = handler.take(), delivered + 1
                            yield sample
            except OSError as exc:
                handler(exc, "", url)
            barren = 0 if delivered else barren + 1
            if not finite and barren >= max_barren:
                raise RuntimeError(
                    f"no usable sample in {barren} shards drawn in a row; last skips: {handler.pending[-3:]}"
                )
        if finite and handler.pending:
            yield SkipReport(handler.take())

    return stage


def _decode(
    item: RawSample | SkipRecord, opts: DecodeOptions, handler: CountingHandler
) -> LoadedSample | None:
    if isinstance(item, SkipRecord):
        handler.pending.append(item)
        return None
    try:
        return decode_sample(item.key, item.shard, item.meta_bytes, item.audio, opts)
    except SkipSample as exc:
        handler(exc, item.key, item.shard)
        return None


class StreamingDataset(torch.utils.data.IterableDataset):
    """Yields `LoadedSample`s (and, when resampled=False, possibly a final `SkipReport`) per worker.

    Use with `DataLoader(ds, batch_size=None, num_workers=W)` or directly; either way pass the items
    through `collect_skips` in the consuming process so no skip count stays behind in a worker.
    """

    def __init__(self, cfg: StreamingConfig) -> None:
        super().__init__()
        if cfg.resampled and not cfg.epoch_samples:
            raise ValueError("resampled streaming needs epoch_samples (samples per rank per epoch) > 0")
        self.cfg = cfg
        self.urls = shard_urls(cfg.shards, cfg.allow_unsafe)
        self.opts = DecodeOptions(cfg.sample_rate, cfg.min_duration, cfg.max_duration, cfg.require_transcript)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def pipeline(self) -> wds.DataPipeline:
        cfg, seed = self.cfg, make_seed(self.cfg.seed, self.epoch)
        if cfg.resampled:
            shards = wds.ResampledShards(self.urls, seed=seed, deterministic=True)
        else:
            shards = wds.SimpleShardList(self.urls, seed=seed if cfg.shard_shuffle else None)
        stages = [
            shards,
            wds.split_by_node,
            wds.split_by_worker,
            _decode_stage(self.opts, cfg.allow_unsafe, not cfg.resampled, 10 * len(self.urls) + 10),
        ]
        if cfg.sample_shuffle > 0:
            rank, _, worker, _ = pytorch_worker_info()
            stages.append(
                wds.shuffle(
                    cfg.sample_shuffle, initial=cfg.sample_shuffle, seed=make_seed(seed, rank, worker)
                )
            )
        pipe = wds.DataPipeline(*stages)
        if cfg.resampled:
            _, _, worker, workers = pytorch_worker_info()
            pipe = pipe.with_epoch(self.worker_share(worker, workers))
        return pipe

    def worker_share(self, worker: int, workers: int) -> int:
        """Samples worker `worker` of `workers` delivers per epoch; the shares sum to epoch_samples."""
        n = self.cfg.epoch_samples or 0
        return n // workers + (1 if worker < n % workers else 0)

    def __iter__(self) -> Iterator[LoadedSample | SkipReport]:
        if self.cfg.resampled:
            _, _, worker, workers = pytorch_worker_info()
            if self.worker_share(worker, workers) == 0:  # with_epoch(0) would mean "no limit"
                return iter(())
        return iter(self.pipeline())


def collect_skips(items: Iterable[LoadedSample | SkipReport], counter: SkipCounter) -> Iterator[LoadedSample]:
    """Count the skips riding on stream items into `counter` and yield only the samples."""
    for item in items:
        counter.extend(item.skipped)
        if isinstance(item, LoadedSample):
            counter.deliver()
            yield item
