"""The mixture DataModule on real shard sets: order across worker counts, counted skips, eval coverage."""

import json
import logging
import pickle
from dataclasses import fields, replace

import numpy as np
import pytest
import torch
from feedkit import durations, make_audio_spec, make_tokenizer, write_source

from paralm.data.batch import SHARED_MEMORY_MIN_BYTES, Batch, TransferBatch
from paralm.data.datamodule import MixtureDataModule
from paralm.data.index import ShardIndex
from paralm.data.loader import SkipTracker
from paralm.data.prompts import PromptConfig
from paralm.data.skips import SkipRateExceeded
from paralm.data.sources import SourceSpec


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    write_source(root / "gen", "g", durations(24, seed=1), n_qa=2)
    write_source(root / "imp", "i", durations(16, seed=2), n_qa=1, kind="implicit", shard_bytes=20_000)
    write_source(root / "val", "v", durations(7, seed=3), split="val", n_qa=2)
    return root


def make_dm(tok, corpus, **kw):
    args = dict(
        train_sources=[
            SourceSpec("gen", str(corpus / "gen"), weight=2.0),
            SourceSpec("imp", str(corpus / "imp"), kind="implicit"),
        ],
        val_sources=[SourceSpec("val", str(corpus / "val"), split="val")],
        batch_size=4,
        num_workers=0,
        seed=0,
    )
    args.update(kw)
    dm = MixtureDataModule(**args)
    dm.attach(tok, make_audio_spec(tok))
    return dm


def epoch_keys(loader, epoch):
    loader.sampler.set_epoch(epoch)
    return [list(zip(b.keys, [m["qa_index"] for m in b.meta], strict=True)) for b in loader]


def test_same_seed_same_order_across_runs_and_worker_counts(tok, corpus):
    runs = {}
    for workers in (0, 2):
        loader = make_dm(tok, corpus, num_workers=workers).train_dataloader()
        runs[workers] = [epoch_keys(loader, e) for e in (0, 1)]
    assert runs[0] == runs[2]
    again = make_dm(tok, corpus).train_dataloader()
    assert [epoch_keys(again, e) for e in (0, 1)] == runs[0]
    assert runs[0][0] != runs[0][1]
    other = make_dm(tok, corpus, seed=1).train_dataloader()
    assert epoch_keys(other, 0) != runs[0][0]


def test_realised_counts_are_logged_and_follow_the_knob(tok, corpus, caplog):
    dm = make_dm(tok, corpus, implicit_ratio=0.25, samples_per_epoch=400)
    with caplog.at_level(logging.INFO, logger="paralm.data.datamodule"):
        batches = list(dm.train_dataloader())
    counts = dm.last_plan_counts
    assert sum(counts.values()) == 400 and abs(counts["imp"] / 400 - 0.25) < 0.07
    assert any("drawn per source" in r.getMessage() and "'imp'" in r.getMessage() for r in caplog.records)
    seen = [s for b in batches for s in b.sources]
    assert seen.count("imp") == counts["imp"]


def corrupt(source_dir, keys):
    """Overwrite the first bytes of the audio data of `keys` so they no longer decode."""
    index = ShardIndex.load(source_dir)
    for row in index.samples:
        if row.key in keys:
            with open(source_dir / row.shard, "r+b") as f:
                f.seek(row.audio_offset)
                f.write(b"\x00" * 64)


def test_unreadable_samples_are_dropped_counted_and_written(tok, tmp_path):
    write_source(tmp_path / "a", "a", durations(12), n_qa=1)
    corrupt(tmp_path / "a", {"a0003", "a0007"})
    log_path = tmp_path / "logs" / "skipped.jsonl"
    dm = MixtureDataModule(
        train_sources=[SourceSpec("a", str(tmp_path / "a"))],
        batch_size=3,
        num_workers=2,
        skip_log_path=str(log_path),
        max_skip_rate=0.5,
    )
    dm.attach(tok, make_audio_spec(tok))
    keys = [k for b in dm.train_dataloader() for k in b.keys]
    assert sorted(keys) == sorted(f"a{i:04d}" for i in range(12) if i not in (3, 7))
    stats = dm.data_stats()
    assert stats["skip_corrupt_audio"] == 2 and stats["seen"] == 12 and stats["delivered"] == 10
    written = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert sorted(r["key"] for r in written) == ["a0003", "a0007"]
    assert {r["reason"] for r in written} == {"corrupt_audio"} and all(r["shard"] for r in written)


def test_a_batch_with_no_readable_sample_gets_a_flagged_stand_in(tok, tmp_path):
    write_source(tmp_path / "a", "a", durations(4), n_qa=1)
    corrupt(tmp_path / "a", {"a0001"})
    dm = MixtureDataModule(
        train_sources=[SourceSpec("a", str(tmp_path / "a"))], batch_size=1, num_workers=0, max_skip_rate=1.0
    )
    dm.attach(tok, make_audio_spec(tok))
    batches = list(dm.train_dataloader())
    assert len(batches) == 4
    pads = [b for b in batches if b.meta[0]["is_pad"]]
    assert len(pads) == 1 and pads[0].keys[0] != "a0001"
    assert dm.data_stats()["delivered"] == 3


def test_skip_rate_guard_stops_with_a_message_naming_the_counts(tok, tmp_path):
    write_source(tmp_path / "a", "a", durations(10), n_qa=1)
    corrupt(tmp_path / "a", {f"a{i:04d}" for i in range(5)})
    dm = MixtureDataModule(
        train_sources=[SourceSpec("a", str(tmp_path / "a"))],
        batch_size=2,
        num_workers=0,
        max_skip_rate=0.2,
        skip_log_path=str(tmp_path / "skipped.jsonl"),
    )
    dm.attach(tok, make_audio_spec(tok))
    dm.tracker("train").min_seen = 4
    with pytest.raises(SkipRateExceeded, match=r"max_skip_rate 20.0%\): corrupt_audio=\d"):
        list(dm.train_dataloader())
    assert (tmp_path / "skipped.jsonl").read_text().count("corrupt_audio") >= 1


@pytest.mark.parametrize("workers", [0, 2])
def test_val_loader_yields_every_qa_item_once(tok, corpus, workers):
    dm = make_dm(tok, corpus, num_workers=workers, eval_prompt=PromptConfig("explicit", "pred:ser"))
    batches = list(dm.val_dataloader())
    items = [(k, m["qa_index"]) for b in batches for k, m in zip(b.keys, b.meta, strict=True)]
    assert sorted(items) == sorted((f"v{i:04d}", q) for i in range(7) for q in range(2))
    assert all(m["prompt"]["mode"] == "explicit" for b in batches for m in b.meta)
    assert [len(b) for b in batches] == [4, 4, 4, 2]
    assert batches == [] or [b.keys for b in dm.val_dataloader()] == [b.keys for b in batches]


def test_generation_loader_is_left_padded_without_answers(tok, corpus):
    dm = make_dm(tok, corpus)
    batch = next(iter(dm.generation_dataloader("val")))
    assert (batch.labels == -100).all() and (batch.attention_mask[:, -1] == 1).all()
    assert all(batch.references)


def test_state_dict_resumes_outside_a_trainer_at_the_next_batch(tok, corpus):
    full = epoch_keys(make_dm(tok, corpus).train_dataloader(), 1)
    dm = make_dm(tok, corpus)
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(1)
    it = iter(loader)
    head = [
        list(zip(b.keys, [m["qa_index"] for m in b.meta], strict=True))
        for b in (next(it), next(it), next(it))
    ]
    state = dm.state_dict()
    assert (state["epoch"], state["batches_consumed"]) == (1, 3)
    resumed = make_dm(tok, corpus)
    resumed.load_state_dict(state)
    tail = [
        list(zip(b.keys, [m["qa_index"] for m in b.meta], strict=True)) for b in resumed.train_dataloader()
    ]
    assert head + tail == full
    assert resumed.data_stats()["seen"] == sum(len(b) for b in full)


def test_skip_counters_restore_per_rank_or_as_totals_after_a_world_size_change():
    saved = []
    for delivered in (5, 7):
        tracker = SkipTracker()
        tracker.counter.deliver(delivered)
        tracker.counter.add("corrupt_audio", f"k{delivered}", "s.tar")
        saved.append(tracker.state_dict())
    same = SkipTracker()
    same.restore(saved, rank=1, world_size=2)
    assert (same.counter.delivered, same.counter.total) == (7, 1)
    merged, other_rank = SkipTracker(), SkipTracker()
    merged.restore(saved, rank=0, world_size=1)
    other_rank.restore(saved, rank=1, world_size=3)
    assert (merged.counter.delivered, merged.counter.counts["corrupt_audio"]) == (12, 2)
    assert other_rank.counter.seen == 0


def test_loaders_need_attach_first(corpus):
    dm = MixtureDataModule(train_sources=[SourceSpec("gen", str(corpus / "gen"))])
    with pytest.raises(RuntimeError, match="attach"):
        dm.train_dataloader()


def test_batches_from_worker_processes_equal_main_process_batches(tok, corpus):
    def batches(workers):
        loader = make_dm(tok, corpus, num_workers=workers).train_dataloader()
        loader.sampler.set_epoch(0)
        return list(loader)

    main, workers = batches(0), batches(2)
    assert len(main) == len(workers) > 0
    for a, b in zip(main, workers, strict=True):
        assert isinstance(b, Batch) and b.keys == a.keys and b.meta == a.meta
        for f in fields(Batch):
            x, y = getattr(a, f.name), getattr(b, f.name)
            if isinstance(x, torch.Tensor):
                assert isinstance(y, torch.Tensor) and y.dtype == x.dtype, f.name
                torch.testing.assert_close(y, x, rtol=0, atol=0)


def test_transfer_batch_sends_small_tensors_by_value_and_large_ones_as_tensors(tok, corpus):
    batch = next(iter(make_dm(tok, corpus).train_dataloader()))
    big = torch.zeros(SHARED_MEMORY_MIN_BYTES // 4 + 1)
    packed = TransferBatch.pack(replace(batch, features=big))
    assert isinstance(packed.fields["input_ids"], np.ndarray)
    assert isinstance(packed.fields["features"], torch.Tensor)
    back = TransferBatch.unpack(pickle.loads(pickle.dumps(packed)))
    assert torch.equal(back.input_ids, batch.input_ids) and torch.equal(back.features, big)
    assert back.keys == batch.keys and back.encoder_states is None
    states = torch.randn(len(batch), 3, 4, dtype=torch.bfloat16)  # small, and numpy has no bfloat16
    back = TransferBatch.unpack(pickle.loads(pickle.dumps(TransferBatch.pack(replace(batch, encoder_states=states)))))
    assert back.encoder_states.dtype == torch.bfloat16 and torch.equal(back.encoder_states, states)
