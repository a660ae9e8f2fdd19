"""Skips are counted per clip in evaluation, and a run over its skip-rate limit stops with one line and exit 7."""

from __future__ import annotations

import pytest
import yaml
from faultkit import build_shards, fit, overlay, tail
from feedkit import durations, make_audio_spec, make_tokenizer, write_source

from paralm.data.datamodule import MixtureDataModule
from paralm.data.index import ShardIndex
from paralm.data.loader import BatchReport, SkipTracker
from paralm.data.skips import SkipRateExceeded
from paralm.data.sources import SourceSpec
from paralm.fault.exits import EXIT_SKIP_RATE, FaultExit


def corrupt(source_dir, keys):
    """Overwrite the first bytes of the audio data of `keys` so they no longer decode."""
    for row in ShardIndex.load(source_dir).samples:
        if row.key in keys:
            with open(source_dir / row.shard, "r+b") as f:
                f.seek(row.audio_offset)
                f.write(b"\x00" * 64)


@pytest.mark.parametrize("workers", [0, 2])
def test_validation_counts_one_skip_per_clip_not_per_question(tmp_path, workers):
    write_source(tmp_path / "v", "v", durations(6, seed=4), split="val", n_qa=3)
    corrupt(tmp_path / "v", {"v0001", "v0004"})
    dm = MixtureDataModule(val_sources=[SourceSpec("v", str(tmp_path / "v"), split="val")], batch_size=6,
                           num_workers=workers, max_skip_rate=1.0)
    dm.attach(make_tokenizer(), make_audio_spec(make_tokenizer()))
    keys = [k for b in dm.val_dataloader() for k, m in zip(b.keys, b.meta, strict=True) if not m["is_pad"]]
    assert sorted(set(keys)) == ["v0000", "v0002", "v0003", "v0005"] and len(keys) == 12
    stats = dm.data_stats("val")
    assert (stats["skipped"], stats["skip_corrupt_audio"], stats["delivered"], stats["seen"]) == (2, 2, 4, 6)


def test_the_skip_rate_stop_is_a_fault_exit_naming_rate_limit_and_skip_log(tmp_path):
    tracker = SkipTracker(max_skip_rate=0.25, skip_log_path=tmp_path / "skips.jsonl", min_seen=4)
    report = BatchReport()
    for i in range(3):
        report.skips.add("corrupt_audio", f"k{i}", "s.tar", "junk")
    report.skips.deliver(2)
    with pytest.raises(FaultExit) as stop:
        tracker.absorb(report)
    assert stop.value.exit_code == EXIT_SKIP_RATE == 7 and isinstance(stop.value, SkipRateExceeded)
    assert str(stop.value) == ("skipped 3 of 5 samples (60.0% > max_skip_rate 25.0%): corrupt_audio=3; "
                               f"skipped keys in {tmp_path / 'skips.jsonl'}")
    assert len((tmp_path / "skips.jsonl").read_text().splitlines()) == 3


@pytest.mark.slow  # a real `paralm fit` (about 50 s on the shared 2-core machine)
def test_fit_over_the_skip_rate_stops_with_one_line_naming_rate_limit_and_skip_log(tmp_path):
    shards = build_shards(tmp_path / "data", n=40, damaged=False)
    corrupt(shards, {row.key for row in ShardIndex.load(shards).samples[::2]})  # half of the clips
    skip_log = tmp_path / "skips.jsonl"
    cfg = overlay(tmp_path / "o.yaml", shards, tmp_path / "ckpt", [], max_steps=40)
    doc = yaml.safe_load(cfg.read_text())
    doc["data"].update(batch_size=16, max_skip_rate=0.2, skip_log_path=str(skip_log))
    cfg.write_text(yaml.safe_dump(doc))
    run = fit(tmp_path / "run", cfg).wait()
    assert run.returncode == EXIT_SKIP_RATE, tail(run)
    assert "Traceback" not in run.stderr
    line = next(x for x in run.stderr.splitlines() if "max_skip_rate" in x)
    assert "> max_skip_rate 20.0%" in line and "corrupt_audio=" in line and f"skipped keys in {skip_log}" in line
    assert skip_log.exists()
