"""A shard set is published whole: a killed pack leaves nothing a reader (streaming included) would read.

Reproduces issue 14 item 7: a pack killed part way and a smaller repack into the same folder used to
stream the killed run's complete-but-unindexed shards along with the new ones.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

from shardkit import make_corpus

from paralm.data.index import ShardIndex
from paralm.data.pack import pack
from paralm.data.skips import SkipCounter
from paralm.data.streaming import StreamingConfig, StreamingDataset, collect_skips

PARALM = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "paralm")


def streamed_keys(folder: Path) -> list[str]:
    ds = StreamingDataset(StreamingConfig(str(folder), resampled=False, shard_shuffle=False))
    return sorted(s.key for s in collect_skips(ds, SkipCounter()))


def pack_cmd(corpus, out: Path, *extra: str) -> list[str]:
    return [PARALM, "data", "pack", "--manifest", str(corpus.manifest), "--audio-root", str(corpus.audio_root),
            "--out", str(out), "--no-progress", *extra]


def kill_after_two_shards(cmd: list[str], staging_glob: Path) -> None:
    """Start a pack and kill -9 it once its staging folder holds two finished shards."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(list(staging_glob.parent.glob(f"{staging_glob.name}/shard-*.tar"))) < 2:
            assert proc.poll() is None, "pack finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()


def test_killed_pack_leaves_no_shard_in_out_and_a_repack_streams_only_its_own_samples(tmp_path):
    big = make_corpus(tmp_path / "big", 120, seed=1, durations=(2.0, 2.5))
    out = tmp_path / "out"
    kill_after_two_shards(pack_cmd(big, out, "--shard-bytes", "60k"), tmp_path / ".out.staging-*")
    assert not out.exists()  # nothing was published
    assert len(list(tmp_path.glob(".out.staging-*"))) == 1  # the killed run's shards stay hidden beside it
    small = make_corpus(tmp_path / "small", 5, seed=2, durations=(0.3, 0.5))
    assert subprocess.run(pack_cmd(small, out), capture_output=True).returncode == 0
    assert streamed_keys(out) == sorted(r["key"] for r in small.records)
    again = subprocess.run(pack_cmd(small, out, "--overwrite"), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "removed 1 leftover(s) of unfinished runs" in again.stdout
    assert not list(tmp_path.glob(".out.staging-*"))


def test_readers_ignore_unindexed_shards_and_partial_files_of_an_older_writer(tmp_path):
    corpus = make_corpus(tmp_path, 6, seed=3, durations=(0.3, 0.5))
    pack(corpus.records[:3], corpus.audio_root, tmp_path / "a")
    pack(corpus.records[3:], corpus.audio_root, tmp_path / "b")
    shutil.copy(tmp_path / "b" / "shard-000000.tar", tmp_path / "a" / "shard-000007.tar")  # a killed run's shard
    shutil.copy(tmp_path / "b" / "shard-000000.tar", tmp_path / "a" / ".shard-000008.tar.partial-4242")
    assert streamed_keys(tmp_path / "a") == sorted(r["key"] for r in corpus.records[:3])
    (tmp_path / "a" / "index.json").unlink()  # without an index: visible *.tar only, never a .partial
    assert streamed_keys(tmp_path / "a") == sorted(r["key"] for r in corpus.records)


def test_pack_into_a_folder_with_leftovers_needs_overwrite_which_removes_and_counts_them(tmp_path):
    corpus = make_corpus(tmp_path, 3, seed=4, durations=(0.3, 0.5))
    out = tmp_path / "out"
    out.mkdir()
    (out / ".shard-000000.tar.partial-123").write_bytes(b"x" * 600)
    (out / ".index.json.tmp-123").write_text("{")
    refused = subprocess.run(pack_cmd(corpus, out), capture_output=True, text=True)
    assert refused.returncode == 2 and "holds 2 leftover file(s) of an unfinished run" in refused.stderr
    done = subprocess.run(pack_cmd(corpus, out, "--overwrite"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "removed 2 leftover(s)" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["index.json", "pack_skipped.jsonl", "shard-000000.tar"]


def test_overwrite_never_deletes_a_users_own_files(tmp_path):
    corpus = make_corpus(tmp_path, 2, seed=5, durations=(0.3, 0.5))
    out = tmp_path / "out"
    pack(corpus.records, corpus.audio_root, out)
    (out / "notes.txt").write_text("mine")
    refused = subprocess.run(pack_cmd(corpus, out, "--overwrite"), capture_output=True, text=True)
    assert refused.returncode == 2 and "'notes.txt', which is not part of a shard set" in refused.stderr
    assert (out / "notes.txt").read_text() == "mine" and len(ShardIndex.load(out)) == 2
