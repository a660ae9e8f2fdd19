"""Packing audio + manifest into shards, the index it writes, and reading samples back by offset."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tarfile

import numpy as np
import pytest
import soundfile as sf
from shardkit import add_bad_inputs, encode, make_corpus, tone

from paralm.data import inspect as data_inspect
from paralm.data import pack as data_pack
from paralm.data.index import INDEX_NAME, ShardIndex
from paralm.data.manifest import csv_row_to_meta, read_manifest
from paralm.data.reader import SampleReader, iter_samples
from paralm.data.shards import ShardWriter, write_shards
from paralm.data.tario import TarWriter


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("c"), 12, seed=5, sample_rate=22050)


@pytest.fixture(scope="module")
def packed(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("p") / "flac"
    return data_pack.pack(
        read_manifest(corpus.manifest), corpus.audio_root, out, shard_bytes=60_000, prefix="kit"
    )


def test_flac_round_trip_returns_the_packed_audio_and_metadata(corpus, packed):
    index = ShardIndex.load(packed.out_dir)
    reader = SampleReader(packed.out_dir, sample_rate=22050)
    assert [r.key for r in index.samples] == [r["key"] for r in corpus.records]
    for row, record in zip(index.samples, corpus.records, strict=True):
        sample = reader.read(row)
        original, sr = sf.read(corpus.audio_root / record["audio"], dtype="float32")
        np.testing.assert_allclose(sample.audio, original, atol=1e-4)  # FLAC of a 16-bit WAV is lossless
        assert sample.meta["labels"] == record["labels"] and sample.meta["qa"] == record["qa"]
        assert row.duration == pytest.approx(len(original) / sr, abs=1e-5)
        assert row.emotion == record["labels"]["gold"]["emotion"]
        assert row.qa_types == [q["type"] for q in record["qa"]] and row.n_qa == len(record["qa"])


def test_reader_resamples_to_16k_mono(packed):
    index = ShardIndex.load(packed.out_dir)
    row = index.samples[0]
    sample = SampleReader(packed.out_dir).read(row)
    assert sample.sample_rate == 16000 and sample.audio.dtype == np.float32 and sample.audio.ndim == 1
    assert abs(len(sample.audio) - round(row.duration * 16000)) <= 1


def test_index_offsets_point_at_member_data_and_sha256_matches(packed):
    index = ShardIndex.load(packed.out_dir)
    assert len(index.shards) > 1 and all(s.path.startswith("kit-") for s in index.shards)
    for shard in index.shards:
        path = packed.out_dir / shard.path
        assert hashlib.sha256(path.read_bytes()).hexdigest() == shard.sha256
        assert path.stat().st_size == shard.bytes
        rows = [r for r in index.samples if r.shard == shard.path]
        assert shard.count == len(rows) and shard.duration == pytest.approx(sum(r.duration for r in rows))
        with tarfile.open(path) as tar:
            for row in rows:
                audio, meta = tar.getmember(row.audio_member), tar.getmember(f"{row.key}.json")
                assert (audio.offset_data, audio.size) == (row.audio_offset, row.audio_size)
                assert (meta.offset_data, meta.size) == (row.json_offset, row.json_size)
    assert index.verify_shards() == []


def test_verify_shards_names_a_modified_shard(packed, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(packed.out_dir, copy)
    shard = ShardIndex.load(copy).shards[1].path
    with open(copy / shard, "r+b") as f:
        f.seek(600)
        f.write(b"\xff")
    problems = ShardIndex.load(copy).verify_shards()
    assert len(problems) == 1 and problems[0].startswith(shard)


def test_wav_format_packs_pcm16_that_reads_back_exactly(corpus, tmp_path):
    report = data_pack.pack(read_manifest(corpus.manifest), corpus.audio_root, tmp_path / "wav", fmt="wav")
    index = ShardIndex.load(tmp_path / "wav")
    assert report.packed == 12 and all(r.audio_member.endswith(".wav") for r in index.samples)
    reader = SampleReader(tmp_path / "wav", sample_rate=22050)
    for row, record in zip(index.samples, corpus.records, strict=True):
        original, _ = sf.read(corpus.audio_root / record["audio"], dtype="float32")
        np.testing.assert_array_equal(reader.read(row).audio, original)  # 16-bit in, 16-bit PCM out


@pytest.mark.parametrize("fmt", ["ogg", "opus"])
def test_lossy_formats_round_trip(corpus, tmp_path, fmt):
    report = data_pack.pack(read_manifest(corpus.manifest), corpus.audio_root, tmp_path / fmt, fmt=fmt)
    index = ShardIndex.load(tmp_path / fmt)
    assert all(r.audio_member.endswith(f".{fmt}") for r in index.samples) and report.packed == 12
    reader = SampleReader(tmp_path / fmt)
    for row, record in list(zip(index.samples, corpus.records, strict=True))[:3]:
        original, sr = sf.read(corpus.audio_root / record["audio"], dtype="float32")
        sample = reader.read(row)
        assert abs(sample.duration - len(original) / sr) < 0.03
        n = min(len(sample.audio), round(len(original) * 16000 / sr))
        assert np.abs(sample.audio[:n]).max() == pytest.approx(np.abs(original).max(), rel=0.2)


def test_pack_reports_undecodable_inputs_and_does_not_pack_them(tmp_path, capsys):
    corpus = make_corpus(tmp_path, 6, seed=2)
    expected = add_bad_inputs(corpus)
    code = data_pack.main(
        [
            "--manifest",
            str(corpus.manifest),
            "--audio-root",
            str(corpus.audio_root),
            "--out",
            str(tmp_path / "out"),
            "--strict",
        ]
    )
    assert code == 1
    printed = capsys.readouterr().out
    index = ShardIndex.load(tmp_path / "out")
    refused = {r.key: r.reason for r in index.pack_skipped}
    assert refused == {keys[0]: reason for reason, keys in expected.items()}
    assert len(index.samples) == 6 and {r.key for r in index.samples}.isdisjoint(
        {"bad_garbage", "bad_nan", "bad_empty"}
    )
    with tarfile.open(tmp_path / "out" / index.shards[0].path) as tar:
        assert not any(n.startswith("bad_") for n in tar.getnames())
    assert "bad_garbage: corrupt_audio" in printed and "bad_nan: non_finite_audio" in printed
    lines = (tmp_path / "out" / "pack_skipped.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["reason"] for x in lines) == sorted(expected)


def test_pack_refuses_to_overwrite_an_existing_set(corpus, packed, capsys):
    args = [
        "--manifest",
        str(corpus.manifest),
        "--audio-root",
        str(corpus.audio_root),
        "--out",
        str(packed.out_dir),
    ]
    assert data_pack.main(args) == 2
    assert "already holds a shard set" in capsys.readouterr().err


def test_csv_manifest_maps_flat_columns(tmp_path):
    corpus = make_corpus(tmp_path, 2, seed=3)
    path = tmp_path / "m.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "audio",
                "transcript",
                "corpus",
                "split",
                "gold_emotion",
                "gold_arousal",
                "labels.pred.ser.emotion",
                "labels.pred.ser.probs",
                "question",
                "answer",
                "qa_type",
                "speaker",
            ]
        )
        for r in corpus.records:
            w.writerow(
                [
                    r["audio"],
                    "hello there",
                    "csvkit",
                    "train",
                    "sad",
                    "0.25",
                    "angry",
                    '{"angry": 0.9, "sad": 0.1}',
                    "How do they sound?",
                    "Sad.",
                    "DP",
                    "spk7",
                ]
            )
    report = data_pack.pack(read_manifest(path), corpus.audio_root, tmp_path / "out")
    sample = SampleReader(tmp_path / "out").read(report.index.samples[0])
    assert sample.key == corpus.records[0]["key"]  # key from the audio file stem
    assert sample.meta["labels"] == {
        "gold": {"emotion": "sad", "arousal": 0.25},
        "pred": {"ser": {"emotion": "angry", "probs": {"angry": 0.9, "sad": 0.1}}},
    }
    assert sample.meta["qa"] == [
        {"question": "How do they sound?", "answer": "Sad.", "type": "DP", "origin": "human"}
    ]
    assert sample.meta["speaker"] == "spk7" and report.index.samples[0].emotion == "sad"


def test_csv_number_columns_reject_text():
    with pytest.raises(ValueError, match="arousal"):
        csv_row_to_meta({"audio": "a.wav", "gold_arousal": "high"})


def test_interrupted_writer_leaves_no_shard_under_a_final_name(tmp_path):
    audio = encode(tone(0.3, 16000, 1), 16000)
    meta = {"key": "a1", "transcript": "x", "duration": 0.3, "corpus": "c", "split": "train"}
    with pytest.raises(RuntimeError, match="killed"):
        with ShardWriter(tmp_path / "set") as writer:
            writer.add(meta, audio, "flac")
            raise RuntimeError("killed")
    assert list((tmp_path / "set").iterdir()) == []
    (tmp_path / "p").mkdir()
    partial = TarWriter(tmp_path / "p" / "x.tar")  # a writer killed before close()
    partial.add("a.json", b"{}")
    assert [p.name for p in (tmp_path / "p").iterdir()] == [partial.tmp.name] and not partial.path.exists()


def test_write_shards_append_continues_numbering_and_keeps_rows(packed, tmp_path):
    src = ShardIndex.load(packed.out_dir)
    first = [(m, a, r.audio_member.split(".")[1]) for r, m, a in list(iter_samples(src))[:4]]
    rest = [(m, a, r.audio_member.split(".")[1]) for r, m, a in list(iter_samples(src))[4:]]
    write_shards(first, tmp_path / "s", shard_bytes=50_000)
    index = write_shards(rest, tmp_path / "s", shard_bytes=50_000, append=True)
    assert [r.key for r in index.samples] == [r.key for r in src.samples]
    names = [s.path for s in index.shards]
    assert names == [f"shard-{i:06d}.tar" for i in range(len(names))]
    assert ShardIndex.load(tmp_path / "s").verify_shards() == []
    with pytest.raises(FileExistsError):
        write_shards(rest, tmp_path / "s")


def test_inspect_reports_counts_durations_and_distributions(corpus, packed, capsys):
    assert data_inspect.main([str(packed.out_dir), "--json", "--verify"]) == 0
    report = json.loads(capsys.readouterr().out)
    records = corpus.records
    assert report["samples"] == 12 and report["shards"] == len(ShardIndex.load(packed.out_dir).shards)
    assert report["splits"]["val"]["count"] == sum(r["split"] == "val" for r in records)
    golds = [r["labels"]["gold"]["emotion"] for r in records]
    assert report["gold"]["emotion"] == {e: golds.count(e) for e in set(golds)}
    preds = [r["labels"]["pred"]["ser"]["emotion"] for r in records]
    assert report["pred"]["ser"]["emotion"] == {e: preds.count(e) for e in set(preds)}
    types = [q["type"] for r in records for q in r["qa"]]
    assert report["qa"]["types"] == {t: types.count(t) for t in set(types)}
    assert report["duration"]["min_s"] <= report["duration"]["median_s"] <= report["duration"]["max_s"]
    assert report["verify"]["delivered"] == 12 and report["verify"]["sha256_problems"] == []
    assert data_inspect.main([str(packed.out_dir)]) == 0
    text = capsys.readouterr().out
    assert "split train" in text and "pred:ser" in text and "qa:" in text


def test_index_file_is_json_beside_the_shards(packed):
    doc = json.loads((packed.out_dir / INDEX_NAME).read_text())
    assert doc["version"] == 1 and len(doc["samples"]) == 12
    assert set(doc["samples"][0]) >= {
        "key",
        "shard",
        "audio_member",
        "audio_offset",
        "json_offset",
        "duration",
        "split",
    }


def test_pack_can_resample_while_packing(corpus, tmp_path):
    report = data_pack.pack(
        read_manifest(corpus.manifest), corpus.audio_root, tmp_path / "s", sample_rate=16000
    )
    row, meta, audio = next(iter_samples(report.index))
    assert sf.info(io.BytesIO(audio)).samplerate == 16000
    assert meta["duration"] == pytest.approx(row.duration) and row.duration == pytest.approx(
        sf.info(corpus.audio_root / corpus.records[0]["audio"]).duration, abs=1e-3
    )
