"""Hostile manifest rows never sink `paralm data pack`: each is a counted skip with its reason.

Run as the user runs it (the installed console script); one pack holds every attack next to good rows,
so the good rows must all be packed and each bad row must be named in pack_skipped.jsonl.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from shardkit import make_corpus

from paralm.data.index import ShardIndex

PARALM = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "paralm")


def run_pack(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PARALM, "data", "pack", *args], capture_output=True, text=True, timeout=120)


def hostile_lines(good: dict, outside: Path) -> dict[str, str]:
    """Raw manifest lines (as a hostile or careless tool writes them) -> the skip reason each must get."""
    base = json.dumps({k: v for k, v in good.items() if k not in ("key", "audio")})[1:-1]
    audio = json.dumps(good["audio"])
    return {
        f'{{"key": "nan_row", "audio": {audio}, "extra": NaN, {base}}}': "bad_json",
        f'{{"key": "inf_row", "audio": {audio}, "extra": -Infinity, {base}}}': "bad_json",
        f'{{"key": "big_float", "audio": {audio}, "extra": 1e999, {base}}}': "bad_json",
        f'{{"key": "surrogate", "audio": {audio}, {base}, "transcript": "lone \\ud800 half"}}': "bad_json",
        f'{{"key": "audio_int", "audio": 5, {base}}}': "schema",
        f'{{"key": "audio_list", "audio": ["a.wav", "b.wav"], {base}}}': "schema",
        f'{{"key": "big_int", "audio": {audio}, "extra": {"9" * 5000}, {base}}}': "bad_json",
        f'{{"key": "deep", "audio": {audio}, "extra": {"[" * 100_000}{"]" * 100_000}, {base}}}': "bad_json",
        f'{{"key": "climbs_out", "audio": "../../{outside.name}", {base}}}': "unsafe_member_name",
        f'{{"key": "absolute", "audio": {json.dumps(str(outside))}, {base}}}': "unsafe_member_name",
        f'{{"key": "symlink_out", "audio": "link_out.wav", {base}}}': "unsafe_member_name",
    }


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A corpus of 4 good clips plus every hostile row, packed once through the console script."""
    tmp = tmp_path_factory.mktemp("hostile")
    corpus = make_corpus(tmp, 4, seed=5, durations=(0.3, 0.5))
    outside = tmp / "secret.wav"
    outside.write_bytes((corpus.audio_root / corpus.records[0]["audio"]).read_bytes())
    os.symlink(outside, corpus.audio_root / "link_out.wav")
    lines = hostile_lines(corpus.records[0], outside)
    good = [json.dumps(r) for r in corpus.records]
    corpus.manifest.write_text("\n".join(good[:2] + list(lines) + good[2:]) + "\n")
    proc = run_pack("--manifest", str(corpus.manifest), "--audio-root", str(corpus.audio_root),
                    "--out", str(tmp / "out"))
    return corpus, lines, proc, tmp / "out"


def test_every_hostile_row_is_a_counted_skip_and_the_good_rows_are_packed(hostile):
    corpus, lines, proc, out = hostile
    assert proc.returncode == 0, proc.stderr[-2000:]
    index = ShardIndex.load(out)
    assert [r.key for r in index.samples] == [r["key"] for r in corpus.records]
    skipped = [json.loads(x) for x in (out / "pack_skipped.jsonl").read_text().splitlines()]
    assert sorted(s["reason"] for s in skipped) == sorted(lines.values())
    assert len(index.pack_skipped) == len(lines)


def test_each_skip_names_the_manifest_line_and_what_was_wrong(hostile):
    corpus, lines, proc, out = hostile
    details = [json.loads(x)["detail"] for x in (out / "pack_skipped.jsonl").read_text().splitlines()]
    for n, fragment in enumerate(["NaN", "-Infinity", "1e999", "surrogate", "int", "list", "4300 digits",
                                  "nesting too deep", "climbs out", "is absolute", "symlink"], start=3):
        assert any(f"manifest.jsonl:{n}" in d and fragment in d for d in details), (n, fragment, details)
    assert "refused 11 input(s)" in proc.stdout


def test_the_outside_file_is_packed_only_with_allow_outside_root(hostile, tmp_path):
    corpus, _, _, _ = hostile
    row = {**corpus.records[0], "key": "outside_ok", "audio": "link_out.wav"}
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps(row) + "\n")
    proc = run_pack("--manifest", str(manifest), "--audio-root", str(corpus.audio_root),
                    "--out", str(tmp_path / "out"), "--allow-outside-root")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [r.key for r in ShardIndex.load(tmp_path / "out").samples] == ["outside_ok"]


def test_a_line_that_is_not_json_still_stops_naming_file_and_line(tmp_path):
    corpus = make_corpus(tmp_path, 2, seed=6, durations=(0.3, 0.4))
    corpus.manifest.write_text(json.dumps(corpus.records[0]) + "\nthis is not json\n")
    proc = run_pack("--manifest", str(corpus.manifest), "--audio-root", str(corpus.audio_root),
                    "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert f"{corpus.manifest}:2: not JSON" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.staging-*"))


def test_a_good_row_after_an_unusable_one_with_the_same_key_is_packed_and_both_are_reported(tmp_path):
    corpus = make_corpus(tmp_path, 3, seed=7, durations=(0.3, 0.4))
    first, second = dict(corpus.records[1], audio="nowhere.wav"), corpus.records[1]
    third = dict(corpus.records[2])
    rows = [corpus.records[0], first, second, third, dict(third, audio=corpus.records[0]["audio"])]
    corpus.manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = run_pack("--manifest", str(corpus.manifest), "--audio-root", str(corpus.audio_root),
                    "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    index = ShardIndex.load(tmp_path / "out")
    assert [r.key for r in index.samples] == [r["key"] for r in corpus.records]
    assert [(r.key, r.reason) for r in index.pack_skipped] == [(second["key"], "missing_member"),
                                                               (third["key"], "duplicate_key")]
    assert f"manifest.jsonl:2 refused, {corpus.manifest}:3 packed" in proc.stdout
    assert f"already packed from {corpus.manifest}:4; {corpus.manifest}:5 refused" in index.pack_skipped[1].detail


@pytest.mark.parametrize("rate, ok", [("0", False), ("1", False), ("96001", False),
                                      ("abc", False), ("8000", True)])
def test_sample_rate_outside_8k_to_96k_is_a_one_line_user_error(tmp_path, rate, ok):
    corpus = make_corpus(tmp_path, 1, seed=8, durations=(0.3, 0.3))
    proc = run_pack("--manifest", str(corpus.manifest), "--audio-root", str(corpus.audio_root),
                    "--out", str(tmp_path / "out"), "--sample-rate", rate, "--no-progress")
    if ok:
        assert proc.returncode == 0, proc.stderr[-2000:]
        return
    assert proc.returncode == 2 and "--sample-rate" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_pack_prints_progress_lines_with_the_total_on_stderr(tmp_path):
    corpus = make_corpus(tmp_path, 3, seed=9, durations=(0.3, 0.4))
    proc = run_pack("--manifest", str(corpus.manifest), "--audio-root", str(corpus.audio_root),
                    "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pack: 3/3 rows" in proc.stderr and "(done)" in proc.stderr
    assert "pack:" not in proc.stdout  # stdout keeps the summary only


def test_a_bad_csv_cell_is_a_counted_skip_and_the_other_rows_are_packed(tmp_path):
    corpus = make_corpus(tmp_path, 3, seed=10, durations=(0.3, 0.4))
    rows = ["audio,key,transcript,corpus,split,gold_arousal"]
    for i, r in enumerate(corpus.records):
        rows.append(f"{r['audio']},{r['key']},hello there,kit,train,{'high' if i == 1 else 0.5}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    proc = run_pack("--manifest", str(tmp_path / "m.csv"), "--audio-root", str(corpus.audio_root),
                    "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    index = ShardIndex.load(tmp_path / "out")
    assert [r.key for r in index.samples] == [corpus.records[0]["key"], corpus.records[2]["key"]]
    assert [(r.reason, "m.csv:3" in r.detail, "'high' is not a number" in r.detail)
            for r in index.pack_skipped] == [("schema", True, True)]
