"""Tampered shard sets: readers refuse what writers refuse, and a bad index is one clear line (exit 2).

Covers issue 14 item 4 (NaN in a shard's JSON member passed `inspect --verify`) and the index mends
(truncated or wrong-typed index.json, shard paths leaving the index folder, one reason for a `pipe:` row).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from shardkit import make_corpus

from paralm.data.index import ShardIndex
from paralm.data.pack import pack
from paralm.data.reader import SampleReader, SkipSample
from paralm.data.skips import SkipCounter
from paralm.data.streaming import StreamingConfig, StreamingDataset, collect_skips
from paralm.data.tario import TarWriter

PARALM = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "paralm")


def inspect(folder: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([PARALM, "data", "inspect", str(folder), "--json", *extra],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("idx")
    corpus = make_corpus(tmp, 4, seed=21, durations=(0.3, 0.5))
    pack(corpus.records, corpus.audio_root, tmp / "set")
    return tmp / "set"


def copy_set(packed: Path, dest: Path) -> Path:
    shutil.copytree(packed, dest)
    return dest


def edit_index(folder: Path, edit) -> None:
    doc = json.loads((folder / "index.json").read_text())
    edit(doc)
    (folder / "index.json").write_text(json.dumps(doc))


def test_nan_in_a_shard_json_member_is_a_bad_json_skip_when_streamed(packed, tmp_path):
    index = ShardIndex.load(packed)
    data = (packed / index.samples[0].shard).read_bytes()
    writer = TarWriter(tmp_path / "t.tar")  # the same samples, one JSON member with NaN in an unknown field
    for i, r in enumerate(index.samples):
        meta = data[r.json_offset:r.json_offset + r.json_size]
        writer.add(r.audio_member, data[r.audio_offset:r.audio_offset + r.audio_size])
        writer.add(f"{r.key}.json", meta[:-1] + b', "x": NaN}' if i == 1 else meta)
    writer.close()
    stream = SkipCounter()
    keys = [s.key for s in collect_skips(StreamingDataset(
        StreamingConfig([str(tmp_path / "t.tar")], resampled=False)), stream)]
    assert keys == [r.key for i, r in enumerate(index.samples) if i != 1]
    assert stream.nonzero() == {"bad_json": 1}
    assert "NaN is not JSON" in stream.records[0].detail


def test_nan_member_counts_in_inspect_verify(packed, tmp_path):
    folder = copy_set(packed, tmp_path / "v")
    index = ShardIndex.load(folder)
    row = index.samples[0]
    raw = bytearray((folder / row.shard).read_bytes())
    member = bytes(raw[row.json_offset:row.json_offset + row.json_size])
    swapped = member.replace(b'"version": "1"', b'"zz":      NaN')  # NaN in an unknown field
    assert len(swapped) == len(member)  # same size: the index offsets stay right, only the sha256 changes
    raw[row.json_offset:row.json_offset + row.json_size] = swapped
    (folder / row.shard).write_bytes(bytes(raw))
    proc = inspect(folder, "--verify")
    assert proc.returncode == 1, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["verify"]["decode"]["bad_json"] == 1 and report["verify"]["delivered"] == 3
    assert report["unreadable_metadata"] == {"bad_json": 1}


@pytest.mark.parametrize("damage, fragment", [
    (lambda p: p.write_text(p.read_text()[: len(p.read_text()) // 2]), "not a readable shard index"),
    (lambda p: edit_index(p.parent, lambda d: d["samples"][0].update(duration="long")), "field 'duration'"),
    (lambda p: edit_index(p.parent, lambda d: d["samples"][1].update(audio_offset=[1])), "field 'audio_offset'"),
    (lambda p: edit_index(p.parent, lambda d: d.update(samples={"a": 1})), "'samples' must be a list"),
    (lambda p: edit_index(p.parent, lambda d: d["shards"][0].update(count=None)), "field 'count'"),
])
def test_a_truncated_or_wrong_typed_index_is_one_line_and_exit_2(packed, tmp_path, damage, fragment):
    folder = copy_set(packed, tmp_path / "bad")
    damage(folder / "index.json")
    proc = inspect(folder)
    assert proc.returncode == 2
    assert fragment in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_index_shard_paths_leaving_the_folder_are_refused_and_counted(packed, tmp_path):
    folder = copy_set(packed, tmp_path / "esc")
    shutil.copytree(packed, tmp_path / "other")
    rows = ShardIndex.load(folder).samples
    edit_index(folder, lambda d: (d["samples"][0].update(shard=f"../other/{rows[0].shard}"),
                                  d["samples"][1].update(shard=str(tmp_path / "other" / rows[1].shard))))
    (folder / "sub").mkdir()
    (folder / "sub" / "link.tar").symlink_to(tmp_path / "other" / rows[2].shard)
    edit_index(folder, lambda d: d["samples"][2].update(shard="sub/link.tar"))
    index = ShardIndex.load(folder)
    reader = SampleReader(folder)
    reasons = []
    for row in index.samples:
        try:
            reader.read(row)
            reasons.append("ok")
        except SkipSample as exc:
            reasons.append(exc.reason)
    assert reasons == ["unsafe_member_name"] * 3 + ["ok"]
    report = json.loads(inspect(folder, "--verify").stdout)
    assert report["unreadable_metadata"] == {"unsafe_member_name": 3}
    assert report["verify"]["decode"]["unsafe_member_name"] == 3


def test_a_pipe_row_is_unsupported_member_for_plain_inspect_and_for_training_reads(packed, tmp_path):
    folder = copy_set(packed, tmp_path / "pipe")
    edit_index(folder, lambda d: d["samples"][0].update(shard="pipe:touch /tmp/pwned_paralm"))
    plain = json.loads(inspect(folder).stdout)
    assert plain["unreadable_metadata"] == {"unsupported_member": 1}
    with pytest.raises(SkipSample) as err:
        SampleReader(folder).read(ShardIndex.load(folder).samples[0])
    assert err.value.reason == "unsupported_member"
