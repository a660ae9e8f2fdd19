"""Seeded damage: every skip is counted by its reason and exactly the good samples come out.

One packed corpus is copied with one sample per fault kind damaged, a shard cut mid-sample and a
shard emptied (tests/shardkit.py). The indexed reader, the sequential scanner and the streaming
pipeline (with and without dataloader workers) must each count exactly what was injected.
"""

from __future__ import annotations

import pickle

import pytest
import torch
from shardkit import SAMPLE_FAULTS, corrupt_shards, make_corpus

from paralm.data.index import ShardIndex
from paralm.data.manifest import read_manifest
from paralm.data.pack import pack
from paralm.data.reader import SampleReader, SkipSample
from paralm.data.shards import scan_shard
from paralm.data.skips import SKIP_REASONS, SkipCounter, SkipRateExceeded
from paralm.data.streaming import StreamingConfig, StreamingDataset, collect_skips

LIMITS = {"min_duration": 0.25, "max_duration": 3.0}


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("damage")
    corpus = make_corpus(tmp, 48, seed=11)
    pack(read_manifest(corpus.manifest), corpus.audio_root, tmp / "clean")
    return corrupt_shards(tmp / "clean", tmp / "damaged", seed=4, **LIMITS)


def expected(counts: dict[str, int]) -> dict[str, int]:
    return {reason: counts.get(reason, 0) for reason in SKIP_REASONS}


def read_all(root) -> tuple[SkipCounter, list[str]]:
    index = ShardIndex.load(root)
    reader, counter, keys = SampleReader(root, **LIMITS), SkipCounter(), []
    counter.merge(index.skips)
    for row in index.samples:
        try:
            keys.append(reader.read(row).key)
        except SkipSample as exc:
            counter.add(exc.reason, row.key, row.shard, exc.detail)
            continue
        counter.deliver()
    return counter, keys


def test_shardkit_injects_every_fault_kind(damaged):
    assert set(SAMPLE_FAULTS) | {"truncated_shard"} == set(SKIP_REASONS)
    assert all(len(damaged.keys[f]) == 1 for f in SAMPLE_FAULTS)


def test_indexed_reader_counts_every_injected_fault_and_delivers_the_rest(damaged):
    counter, keys = read_all(damaged.out_dir)
    assert counter.counts == expected(damaged.read)
    assert counter.delivered == len(keys) == damaged.delivered
    skipped = {(r.key, r.reason) for r in counter.records}
    for fault in SAMPLE_FAULTS:
        assert (damaged.keys[fault][0], fault) in skipped
    assert set(keys) <= set(damaged.keys["clean"]) | set(damaged.keys["duplicate_key"])


def test_samples_before_a_truncation_are_read_and_those_after_counted(damaged):
    index = ShardIndex.load(damaged.out_dir)
    cut = index.shards[-2].path
    reader = SampleReader(damaged.out_dir, **LIMITS)
    outcomes = []
    for row in (r for r in index.samples if r.shard == cut):
        try:
            reader.read(row)
            outcomes.append("ok")
        except SkipSample as exc:
            outcomes.append(exc.reason)
    first_lost = outcomes.index("truncated_shard")
    assert first_lost > 0 and outcomes[:first_lost] == ["ok"] * first_lost
    assert outcomes[first_lost:] == ["truncated_shard"] * (len(outcomes) - first_lost)


def test_sequential_scan_counts_structural_faults(damaged):
    counter, seen = SkipCounter(), set()
    raw = 0
    for shard in ShardIndex.load(damaged.out_dir).shards:
        for item in scan_shard(damaged.out_dir / shard.path, shard.path, seen):
            if hasattr(item, "reason"):
                counter.add_record(item)
            else:
                raw += 1
    structural = (
        "missing_member",
        "duplicate_key",
        "unsupported_member",
        "unsafe_member_name",
        "truncated_shard",
    )
    assert counter.counts == expected({r: damaged.scan[r] for r in structural})
    decode_faults = sum(damaged.scan[r] for r in damaged.scan if r not in structural)
    assert raw - decode_faults == damaged.delivered


@pytest.mark.parametrize("workers", [0, 2])
def test_streaming_counts_match_injection_with_and_without_workers(damaged, workers):
    ds = StreamingDataset(StreamingConfig(str(damaged.out_dir), resampled=False, seed=3, **LIMITS))
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers)
    counter = SkipCounter()
    keys = [s.key for s in collect_skips(loader, counter)]
    assert counter.counts == expected(damaged.scan)
    assert counter.delivered == len(keys) == len(set(keys)) == damaged.delivered
    _, indexed_keys = read_all(damaged.out_dir)
    assert sorted(keys) == sorted(indexed_keys)


def test_pickle_members_are_never_unpickled(damaged, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a shard member was unpickled")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    counter, _ = read_all(damaged.out_dir)
    ds = StreamingDataset(StreamingConfig(str(damaged.out_dir), resampled=False, **LIMITS))
    stream_counter = SkipCounter()
    list(collect_skips(ds, stream_counter))
    assert counter.counts["unsupported_member"] == stream_counter.counts["unsupported_member"] == 1


def test_pipe_urls_are_refused_unless_allowed(damaged, tmp_path):
    url = f"pipe:cat {damaged.out_dir}/kit-000000.tar"
    with pytest.raises(ValueError, match="allow_unsafe"):
        StreamingDataset(StreamingConfig([url], resampled=False))
    marker = tmp_path / "ran"
    with pytest.raises(ValueError, match="pipe:"):
        StreamingDataset(StreamingConfig([f"pipe:touch {marker}"], resampled=False))
    assert not marker.exists()
    ds = StreamingDataset(StreamingConfig([url], resampled=False, allow_unsafe=True, **LIMITS))
    assert sum(1 for _ in collect_skips(ds, SkipCounter())) > 0


def test_resampled_streaming_gives_every_rank_the_same_count_deterministically(damaged, monkeypatch):
    def run(rank: int, workers: int) -> list[str]:
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        ds = StreamingDataset(
            StreamingConfig(str(damaged.out_dir), resampled=True, epoch_samples=25, seed=9, **LIMITS)
        )
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers)
        return [s.key for s in collect_skips(loader, SkipCounter())]

    ranks = [run(0, 0), run(1, 0)]
    assert [len(keys) for keys in ranks] == [25, 25]
    assert run(0, 0) == ranks[0]
    assert len(run(1, 2)) == 25


def test_resampled_epoch_smaller_than_worker_count_still_stops(damaged):
    cfg = StreamingConfig(str(damaged.out_dir), resampled=True, epoch_samples=1, **LIMITS)
    loader = torch.utils.data.DataLoader(StreamingDataset(cfg), batch_size=None, num_workers=2)
    assert len(list(collect_skips(loader, SkipCounter()))) == 1


def test_resampled_streaming_raises_when_nothing_is_readable(tmp_path):
    (tmp_path / "empty-000000.tar").write_bytes(b"")
    ds = StreamingDataset(StreamingConfig(str(tmp_path), resampled=True, epoch_samples=4))
    with pytest.raises(RuntimeError, match="no usable sample"):
        list(collect_skips(ds, SkipCounter()))


def test_skip_rate_guard_trips_on_the_damaged_set(damaged):
    counter, _ = read_all(damaged.out_dir)
    with pytest.raises(SkipRateExceeded, match="truncated_shard"):
        counter.check_rate(0.2, min_seen=10)


def test_sample_shuffle_reorders_deterministically_without_losing_samples(damaged):
    def keys(shuffle: int) -> list[str]:
        cfg = StreamingConfig(str(damaged.out_dir), resampled=False, sample_shuffle=shuffle, seed=2, **LIMITS)
        return [s.key for s in collect_skips(StreamingDataset(cfg), SkipCounter())]

    plain, shuffled = keys(0), keys(8)
    assert sorted(plain) == sorted(shuffled) and plain != shuffled and keys(8) == shuffled


def test_corrupt_audio_detail_is_the_same_text_on_every_run():
    from paralm.data.reader import DecodeOptions, decode_audio

    details = set()
    for _ in range(2):
        with pytest.raises(SkipSample) as err:
            decode_audio(b"JUNK" * 100, DecodeOptions())
        details.add((err.value.reason, err.value.detail))
    assert details == {("corrupt_audio", "LibsndfileError: Format not recognised.")}
