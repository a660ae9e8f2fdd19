"""Streamed tars with link, newline and pickle-like members: each such sample is counted, none is opened.

A tar from another tool (or an attacker) can hold members that are symlinks (to /etc/passwd), hard links,
names with a newline (forged log lines) and `.pth` pickles. Streaming (no index) must count every such
sample as a skip, deliver exactly the clean samples, follow no link and unpickle nothing.
"""

from __future__ import annotations

import io
import json
import pickle
import tarfile

import torch
from shardkit import make_corpus

from paralm.data.index import ShardIndex
from paralm.data.manifest import read_manifest
from paralm.data.pack import pack
from paralm.data.skips import SkipCounter
from paralm.data.streaming import StreamingConfig, StreamingDataset, collect_skips


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def hostile_tar(tmp) -> tuple[str, list[str]]:
    """A packed shard of 3 clean samples plus one sample per hostile member kind; (path, clean keys)."""
    corpus = make_corpus(tmp, 3, seed=3)
    pack(read_manifest(corpus.manifest), corpus.audio_root, tmp / "clean")
    index = ShardIndex.load(tmp / "clean")
    out = tmp / "hostile.tar"
    with tarfile.open(tmp / "clean" / index.shards[0].path) as src, tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        members = [(m, src.extractfile(m).read()) for m in src.getmembers()]
        for member, data in members:
            tar.addfile(member, io.BytesIO(data))
        first, meta = members[0][0].name, json.loads(next(d for m, d in members if m.name.endswith(".json")))
        audio = next(d for m, d in members if m.name.endswith(".flac"))

        def sample_json(key: str) -> None:
            _add(tar, f"{key}.json", json.dumps({**meta, "key": key}).encode())

        _add(tar, "symk.flac", kind=tarfile.SYMTYPE, link="/etc/passwd")
        sample_json("symk")
        _add(tar, "hardk.flac", kind=tarfile.LNKTYPE, link=first)
        sample_json("hardk")
        _add(tar, "nl\nk.flac", audio)
        _add(tar, "nl\nk.json", json.dumps({**meta, "key": "nlk"}).encode())
        _add(tar, "pthk.pth", pickle.dumps({"payload": "never unpickled"}))
        sample_json("pthk")
    return str(out), [row.key for row in index.samples]


def test_link_newline_and_pth_members_are_counted_and_never_opened(tmp_path, monkeypatch):
    path, clean = hostile_tar(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("a streamed member was unpickled")

    for module, name in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(module, name, refuse)
    dataset = StreamingDataset(StreamingConfig([path], resampled=False, seed=0, min_duration=0.25,
                                               max_duration=3.0))
    counter = SkipCounter()
    samples = list(collect_skips(dataset, counter))
    assert [s.key for s in samples] == clean and counter.delivered == 3
    # symlink, hard link and .pth samples have no readable audio; the newline name is unsafe
    assert {k: v for k, v in counter.counts.items() if v} == {"missing_member": 3, "unsafe_member_name": 1}
    passwd = open("/etc/passwd", "rb").read()[:32]
    assert not any(passwd in s.audio.tobytes() for s in samples)

