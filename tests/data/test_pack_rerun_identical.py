"""kill -9 of `paralm data pack` part way, then the same command again: the published shard set is byte for
byte the one an uninterrupted pack writes (the killed run's staging leftovers change nothing)."""

from __future__ import annotations

import subprocess

import pytest
from shardkit import make_corpus
from test_staging_publish import kill_after_two_shards, pack_cmd


@pytest.mark.slow  # three packs of 60 clips: ~20 s on the 2-core box
def test_rerun_after_a_killed_pack_is_byte_identical_to_an_uninterrupted_pack(tmp_path):
    corpus = make_corpus(tmp_path / "c", 60, seed=4, durations=(2.0, 2.5))
    killed, clean = tmp_path / "killed" / "out", tmp_path / "clean" / "out"
    killed.parent.mkdir()
    kill_after_two_shards(pack_cmd(corpus, killed, "--shard-bytes", "60k"), killed.parent / ".out.staging-*")
    rerun = subprocess.run(pack_cmd(corpus, killed, "--shard-bytes", "60k", "--overwrite"), capture_output=True,
                           text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    first = subprocess.run(pack_cmd(corpus, clean, "--shard-bytes", "60k"), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    names = sorted(p.name for p in clean.iterdir())
    assert sorted(p.name for p in killed.iterdir()) == names and sum(n.endswith(".tar") for n in names) > 2
    for name in names:
        assert (killed / name).read_bytes() == (clean / name).read_bytes(), name
