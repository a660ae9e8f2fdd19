"""The committed demo corpus records what every QA pair asks, and data/demo/record_asks.py is how it got there.

The shards predate the `asks` field; record_asks.py added it from each pair's `generator.kind` (qa.ASKS)
without touching the audio. These tests read the committed corpus through the indexed reader (so the
rewritten offsets are checked too) and run the script, as its user does, on a small shard written here.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import wave
from pathlib import Path

import pytest
from demokit import DEMO, demo_module

from paralm.data.index import IndexRow, ShardIndex, ShardRow
from paralm.data.tario import iter_members, read_member, sha256_file

SCRIPT = DEMO / "record_asks.py"


@pytest.fixture(scope="module")
def committed_pairs() -> list[dict]:
    """Every qa pair, read at the offsets index.json records (header-checked, as the reader does)."""
    index = ShardIndex.load(DEMO / "shards" / "general")
    assert index.verify_shards() == []
    pairs = []
    for shard in index.shards:
        path = index.shard_path(shard.path)
        with open(path, "rb") as f:
            for row in (r for r in index.samples if r.shard == shard.path):
                meta = json.loads(read_member(f, row.json_offset, row.json_size, f"{row.key}.json", shard.bytes))
                pairs += meta["qa"]
    return pairs


def test_every_committed_pair_records_what_its_generator_kind_asks(committed_pairs):
    asks = demo_module("qa").ASKS
    assert len(committed_pairs) == 10056
    wrong = [p for p in committed_pairs if p.get("asks") != asks[p["generator"]["kind"]]]
    assert wrong == []


def test_every_committed_dp_pair_asks_emotion_or_gender(committed_pairs):
    dp = [p["asks"] for p in committed_pairs if p["type"] == "DP"]
    assert len(dp) == 3696 and set(dp) == {"emotion", "gender"}
    assert dp.count("emotion") == dp.count("gender") == 1848


# --- the script on a shard written here ----------------------------------------------------------
def _wav(seconds: float) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(int(16000 * seconds) * 2))
    return buf.getvalue()


def _meta(key: str, kinds: list[str]) -> dict:
    qa = [{"question": f"q {k}?", "answer": "a", "type": "DP" if k in ("emotion", "gender") else "C",
           "origin": "template", "generator": {"name": "demo-build", "kind": k, "template": f"t.{k}"}}
          for k in kinds]
    return {"key": key, "transcript": "ü words", "corpus": "tiny", "split": "test", "qa": qa, "duration": 0.2}


def _write_set(folder: Path, metas: list[dict]) -> None:
    """One tar with headers unlike the shard writer's (mtime, owner, mode), and its index."""
    folder.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for meta in metas:
            for name, data in ((f"{meta['key']}.wav", _wav(0.2)),
                               (f"{meta['key']}.json", json.dumps(meta, ensure_ascii=False).encode())):
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode, info.uid, info.gid, info.uname = (
                    len(data), 1_700_000_000, 0o600, 1000, 1000, "dev")
                tar.addfile(info, io.BytesIO(data))
    shard = folder / "shard-000000.tar"
    shard.write_bytes(buf.getvalue())
    members = {m.name: m for m in iter_members(io.BytesIO(buf.getvalue()))}
    index = ShardIndex(root=folder, shards=[ShardRow(shard.name, len(metas), 0.4, sha256_file(shard),
                                                     shard.stat().st_size)])
    for meta in metas:
        audio, js = members[f"{meta['key']}.wav"], members[f"{meta['key']}.json"]
        offsets = (audio.offset_data, audio.size, js.offset_data, js.size)
        index.add_rows([IndexRow.from_meta(meta, shard.name, audio.name, offsets)])
    index.save()


def _run(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(folder)], capture_output=True, text=True, timeout=60)


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file in the set's parent folder (a staging folder left beside the set would show up)."""
    return {str(p.relative_to(folder.parent)): p.read_bytes() for p in sorted(folder.parent.rglob("*")) if p.is_file()}


def _members(folder: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(folder / "shard-000000.tar") as tar:
        return [(m, tar.extractfile(m).read()) for m in tar.getmembers()]


def _json_through_index(folder: Path) -> list[str]:
    """Each sample's key, read at the offsets the (rewritten) index records, header-checked."""
    index = ShardIndex.load(folder)
    assert index.verify_shards() == []
    shard = folder / "shard-000000.tar"
    with open(shard, "rb") as f:
        return [json.loads(read_member(f, r.json_offset, r.json_size, f"{r.key}.json", shard.stat().st_size))["key"]
                for r in index.samples]


def test_script_adds_asks_keeps_audio_and_headers_and_a_second_run_changes_nothing(tmp_path):
    folder = tmp_path / "set"
    _write_set(folder, [_meta("a1", ["transcribe", "emotion"]), _meta("b2", ["gender", "tone", "reply"])])
    before = _members(folder)
    done = _run(folder)
    assert done.returncode == 0, done.stderr
    assert "added `asks` to 5 qa pair(s) in 1 shard(s)" in done.stdout
    after = _members(folder)
    assert [m.name for m, _ in after] == ["a1.wav", "a1.json", "b2.wav", "b2.json"]
    for (_, old_data), (new, new_data) in zip(before, after, strict=True):
        assert (new.mtime, new.mode, new.uid, new.gid, new.uname) == (1_700_000_000, 0o600, 1000, 1000, "dev")
        assert new.size == len(new_data)
        if new.name.endswith(".wav"):
            assert new_data == old_data
    a1 = json.loads(after[1][1])
    assert [(p["asks"], list(p)[4]) for p in a1["qa"]] == [("content", "asks"), ("emotion", "asks")]
    assert a1["transcript"] == "ü words" and after[1][1] == json.dumps(a1, ensure_ascii=False).encode()
    assert [p["asks"] for p in json.loads(after[3][1])["qa"]] == ["gender", "context", "context"]
    assert _json_through_index(folder) == ["a1", "b2"]
    snapshot = _snapshot(folder)
    again = _run(folder)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert _snapshot(folder) == snapshot


def test_script_refuses_an_unknown_kind_with_one_line_and_writes_nothing(tmp_path):
    folder = tmp_path / "set"
    _write_set(folder, [_meta("a1", ["emotion"]), _meta("b2", ["gender", "sing"])])
    snapshot = _snapshot(folder)
    done = _run(folder)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0
    assert "shard-000000.tar/b2.json" in done.stderr and "'sing'" in done.stderr
    assert _snapshot(folder) == snapshot  # no staging folder left beside the set either
