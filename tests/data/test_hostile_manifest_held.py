"""The manifest attacks that already held stay held: odd keys, odd audio and bad labels in one pack.

One `paralm data pack` through the console script holds every case next to good rows: rows that cannot
be packed are counted skips with their reason, audio that can be normalised (8 channels, 8 kHz, 96 kHz
24-bit, a 10-ms clip) is packed as 16 kHz mono, and the good rows are all packed. The NaN/Infinity,
lone-surrogate and path-escape rows of the same family are in test_hostile_manifest.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from shardkit import make_corpus, tone

from paralm.data.index import ShardIndex
from paralm.data.reader import SampleReader, SkipSample

PARALM = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "paralm")
SR = 16000


def write_odd_audio(audio: Path) -> None:
    sf.write(audio / "short.wav", tone(0.01, SR, 1), SR, subtype="PCM_16")
    sf.write(audio / "full.flac", tone(0.5, SR, 2), SR, format="FLAC")
    data = (audio / "full.flac").read_bytes()
    (audio / "trunc.flac").write_bytes(data[: len(data) // 2])
    sf.write(audio / "inf.wav", np.array([0.1, np.inf, 0.2] * 800, dtype=np.float32), SR, subtype="FLOAT")
    sf.write(audio / "ch8.wav", np.tile(tone(0.5, SR, 3)[:, None], (1, 8)), SR, subtype="PCM_16")
    sf.write(audio / "k8.wav", tone(0.5, 8000, 4), 8000, subtype="PCM_16")
    sf.write(audio / "k96.wav", tone(0.5, 96000, 5), 96000, subtype="PCM_24")
    (audio / "text.wav").write_text("this is not audio at all\n")
    (audio / "folder.wav").mkdir()


# key -> (row fields over a good row, skip reason or None when the row must be packed)
ROWS = {
    "ключ_ü": ({}, "schema"), "has space": ({}, "schema"), "../escape": ({}, "schema"),
    "/abs/key": ({}, "schema"), "a/b": ({}, "schema"),
    "short": ({"audio": "short.wav"}, None), "ch8": ({"audio": "ch8.wav"}, None),
    "k8": ({"audio": "k8.wav"}, None), "k96": ({"audio": "k96.wav"}, None),
    "trunc": ({"audio": "trunc.flac"}, "corrupt_audio"), "inf": ({"audio": "inf.wav"}, "non_finite_audio"),
    "text": ({"audio": "text.wav"}, "corrupt_audio"), "folder": ({"audio": "folder.wav"}, "missing_member"),
    "passwd": ({"audio": "/etc/passwd"}, "unsafe_member_name"),
    "badsplit": ({"split": "tr ain/.."}, "schema"),
    "badtype": ({"qa": [{"question": "q?", "answer": "a", "type": "XX", "origin": "human"}]}, "schema"),
    "bademo": ({"labels": {"gold": {"emotion": "hangry"}}}, "schema"),
    "nan_arousal": ({"labels": {"gold": {"arousal": "NaN"}}}, "schema"),
}


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("held")
    corpus = make_corpus(tmp, 3, seed=7, durations=(0.4, 0.6))
    write_odd_audio(corpus.audio_root)
    good = corpus.records[0]
    base = {k: v for k, v in good.items() if k != "key"}
    lines = [json.dumps(r) for r in corpus.records]
    lines += [json.dumps({**base, "key": key, **fields}) for key, (fields, _) in ROWS.items()]
    corpus.manifest.write_text("\n".join(lines) + "\n")
    proc = subprocess.run([PARALM, "data", "pack", "--manifest", str(corpus.manifest), "--audio-root",
                           str(corpus.audio_root), "--out", str(tmp / "out")], capture_output=True, text=True,
                          timeout=120)
    return corpus, proc, tmp / "out"


def test_each_unpackable_row_is_a_counted_skip_with_its_reason(packed):
    _, proc, out = packed
    assert proc.returncode == 0, proc.stderr[-2000:]
    skipped = {r["key"]: r["reason"] for r in map(json.loads, (out / "pack_skipped.jsonl").read_text().splitlines())}
    assert skipped == {key: reason for key, (_, reason) in ROWS.items() if reason}


def test_odd_but_usable_audio_and_every_good_row_are_packed_as_16k_mono(packed):
    corpus, _, out = packed
    index = ShardIndex.load(out)
    keys = [r.key for r in index.samples]
    assert keys == [r["key"] for r in corpus.records] + ["short", "ch8", "k8", "k96"]
    reader = SampleReader(out)
    for row in index.samples:
        sample = reader.read(row)
        assert sample.sample_rate == SR and sample.audio.ndim == 1 and np.isfinite(sample.audio).all()
    short = next(r for r in index.samples if r.key == "short")
    assert short.duration == pytest.approx(0.01, abs=1e-3)
    with pytest.raises(SkipSample) as skip:  # training reads with a duration floor count it
        SampleReader(out, min_duration=0.25).read(short)
    assert skip.value.reason == "too_short"


def test_a_row_without_audio_stops_the_pack_naming_file_and_line(tmp_path):
    corpus = make_corpus(tmp_path, 2, seed=8, durations=(0.3, 0.4))
    no_audio = {k: v for k, v in corpus.records[1].items() if k != "audio"}
    corpus.manifest.write_text(json.dumps(corpus.records[0]) + "\n" + json.dumps(no_audio) + "\n")
    proc = subprocess.run([PARALM, "data", "pack", "--manifest", str(corpus.manifest), "--audio-root",
                           str(corpus.audio_root), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"paralm data pack: error: {corpus.manifest}:2: entry {no_audio['key']!r} has no `audio` path")
    assert not (tmp_path / "out").exists()
