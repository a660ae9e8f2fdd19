"""`paralm data index`: shards written by other tools become a usable shard set without being rewritten."""

from __future__ import annotations

import json

import numpy as np
import pytest
from foreignkit import clips, fit_overlay, loose_manifest, paralm, schema_meta, write_wds, write_with_tar

from paralm.data.index import ShardIndex
from paralm.data.reader import SampleReader


def _read_all(root) -> dict:
    index = ShardIndex.load(root)
    reader = SampleReader(root)
    return {row.key: reader.read(row) for row in index.samples}


@pytest.fixture(scope="module")
def foreign_sets(tmp_path_factory):
    """Paralm-schema samples (no duration) in ShardWriter shards with one corrupt clip, and in a GNU tar shard."""
    tmp = tmp_path_factory.mktemp("foreign")
    items = clips(7)
    samples = [{"__key__": c.key, "wav": c.wav, "json": json.dumps(schema_meta(c)).encode()} for c in items[:4]]
    broken = {"key": "broken1", "transcript": "x", "corpus": "mine", "split": "train"}
    samples.insert(2, {"__key__": "broken1", "wav": b"RIFF" + b"\x01" * 60, "json": json.dumps(broken).encode()})
    samples.append({"__key__": "nan1", "wav": items[0].wav, "json": b'{"key": "nan1", "transcript": NaN}'})
    write_wds(tmp / "wds", samples)
    members = []
    for c in items[4:]:
        members += [(f"{c.key}.json", json.dumps(schema_meta(c, split="train")).encode()), (f"{c.key}.wav", c.wav)]
    write_with_tar(tmp / "tarset" / "extra.tar", members)
    return tmp, items


def test_writer_and_tar_shards_index_verify_clean_and_count_the_corrupt_clip(foreign_sets, tmp_path):
    tmp, items = foreign_sets
    out = tmp  # the folder above both shard folders (an index never points outside its folder)
    proc = paralm("data", "index", str(tmp / "wds"), str(tmp / "tarset" / "extra.tar"), "--out", str(out),
                  "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert "indexed 7 samples" in proc.stdout and "corrupt_audio" in proc.stdout
    skipped = [json.loads(line) for line in (out / "pack_skipped.jsonl").read_text().splitlines()]
    assert [(s["key"], s["reason"]) for s in skipped] == [("broken1", "corrupt_audio"), ("nan1", "bad_json")]
    verify = paralm("data", "inspect", str(out), "--verify", "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    report = json.loads(verify.stdout)
    assert report["verify"]["delivered"] == 7 and report["verify"]["sha256_problems"] == []
    assert report["pack_skipped"] == {"corrupt_audio": 1, "bad_json": 1}
    got = _read_all(out)
    assert sorted(got) == sorted(c.key for c in items)
    first = got[items[0].key]
    assert first.meta["duration"] == pytest.approx(0.4) and first.meta["labels"]["gold"]["emotion"] == "neutral"


def test_indexed_foreign_shards_get_template_qa_and_train_two_steps(foreign_sets, tmp_path):
    tmp, _ = foreign_sets
    out, qa = tmp, tmp_path / "qa"
    assert paralm("data", "index", str(tmp / "wds"), str(tmp / "tarset"), "--out", str(out), "--overwrite").returncode == 0
    gen = paralm("data", "generate", str(out), "--out", str(qa), "--backend", "template", "--quiet")
    assert gen.returncode == 0, gen.stderr
    assert ShardIndex.load(qa).samples[0].n_qa > 0
    overlay = fit_overlay(tmp_path, f"{{name: mine, path: {qa}, kind: implicit, split: train}}")
    fit = paralm("fit", "--config", "experiments/debug_cpu.yaml", "--config", str(overlay))
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "`max_steps=2` reached" in fit.stderr + fit.stdout


def test_foreign_members_with_a_map_give_the_same_samples_as_packing_loose_files(tmp_path):
    items = clips(5, seed=3)
    samples = [{"__key__": c.key, "wav": c.wav, "cls": str(i % 4).encode(), "txt": c.transcript.encode()}
               for i, c in enumerate(items)]
    write_wds(tmp_path / "mine", samples)
    fmap = tmp_path / "map.yaml"
    fmap.write_text("audio: [wav]\nfields:\n  transcript: txt\n  labels.gold.emotion: cls\n"
                    "values:\n  labels.gold.emotion: [neutral, happy, sad, angry]\nsplit: train\n")
    proc = paralm("data", "index", str(tmp_path / "mine"), "--out", str(tmp_path / "mine"), "--map", str(fmap))
    assert proc.returncode == 0, proc.stderr
    manifest = loose_manifest(tmp_path / "loose", items)
    packed = paralm("data", "pack", "--manifest", str(manifest), "--audio-root", str(tmp_path / "loose" / "audio"),
                    "--out", str(tmp_path / "packed"))
    assert packed.returncode == 0, packed.stderr
    mapped, reference = _read_all(tmp_path / "mine"), _read_all(tmp_path / "packed")
    assert sorted(mapped) == sorted(reference) == sorted(c.key for c in items)
    for key, ref in reference.items():
        np.testing.assert_array_equal(mapped[key].audio, ref.audio)
        assert mapped[key].meta == ref.meta  # corpus "mine" is the folder name in both


def test_split_from_a_filename_pattern_and_corpus_from_the_map(tmp_path):
    items = clips(2, seed=5)
    write_wds(tmp_path / "set", [{"__key__": c.key, "flac": c.wav, "txt": b"hi"} for c in items])
    (tmp_path / "set" / "train-000000.tar").rename(tmp_path / "set" / "dev-000000.tar")
    fmap = tmp_path / "map.yaml"
    fmap.write_text("audio: flac\nfields: {transcript: txt}\nsplit: {pattern: '^(dev|train)-'}\ncorpus: podcasts\n")
    assert paralm("data", "index", str(tmp_path / "set"), "--out", str(tmp_path / "set"), "--map", str(fmap)).returncode == 0
    rows = ShardIndex.load(tmp_path / "set").samples
    assert [(r.split, r.corpus) for r in rows] == [("dev", "podcasts")] * 2


def test_folder_being_written_is_refused_unless_allowed(tmp_path):
    items = clips(2, seed=7)
    write_wds(tmp_path / "busy", [{"__key__": c.key, "wav": c.wav,
                                   "json": json.dumps(schema_meta(c)).encode()} for c in items])
    (tmp_path / "busy" / ".train-000001.tar.partial-4242").write_bytes(b"")
    proc = paralm("data", "index", str(tmp_path / "busy"), "--out", str(tmp_path / "busy"))
    assert proc.returncode == 2 and "being written" in proc.stderr and not (tmp_path / "busy" / "index.json").exists()
    allowed = paralm("data", "index", str(tmp_path / "busy"), "--out", str(tmp_path / "busy"), "--allow-in-progress")
    assert allowed.returncode == 0 and "indexed 2 samples" in allowed.stdout


@pytest.mark.parametrize("spec", ["pipe:cat shards/a.tar", "https://example.org/a.tar"])
def test_pipe_and_url_inputs_are_refused_with_one_line(tmp_path, spec):
    proc = paralm("data", "index", spec, "--out", str(tmp_path / "idx"))
    assert proc.returncode == 2 and "refusing" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_shards_without_usable_samples_exit_nothing_usable(tmp_path):
    items = clips(2, seed=9)
    write_wds(tmp_path / "raw", [{"__key__": c.key, "wav": c.wav, "cls": b"1"} for c in items])
    proc = paralm("data", "index", str(tmp_path / "raw"), "--out", str(tmp_path / "raw"))
    assert not (tmp_path / "raw" / "index.json").exists() and (tmp_path / "raw" / "pack_skipped.jsonl").is_file()
    assert proc.returncode == 5 and "no usable sample" in proc.stderr and "schema=2" in proc.stderr.replace("'", "").replace(": ", "=")


def test_an_index_outside_the_shard_folder_is_refused(tmp_path):
    items = clips(1, seed=11)
    write_wds(tmp_path / "a", [{"__key__": c.key, "wav": c.wav, "json": json.dumps(schema_meta(c)).encode()}
                               for c in items])
    (tmp_path / "elsewhere").mkdir()
    proc = paralm("data", "index", str(tmp_path / "a"), "--out", str(tmp_path / "elsewhere"))
    assert proc.returncode == 2 and "not inside --out" in proc.stderr


def test_a_cut_shard_and_a_repeated_key_are_counted_and_the_rest_indexed(tmp_path):
    from paralm.data.foreign.index_shards import index_shards

    items = clips(4, seed=13)
    good = write_wds(tmp_path / "set" / "a", [{"__key__": c.key, "wav": c.wav, "json": json.dumps(
        schema_meta(c)).encode()} for c in items[:2]], maxcount=10)[0]
    repeat = write_with_tar(tmp_path / "set" / "b" / "b.tar", [
        (f"{items[0].key}.json", json.dumps(schema_meta(items[0])).encode()), (f"{items[0].key}.wav", items[0].wav),
        (f"{items[2].key}.json", json.dumps(schema_meta(items[2])).encode()), (f"{items[2].key}.wav", items[2].wav),
        (f"{items[3].key}.json", json.dumps(schema_meta(items[3])).encode()), (f"{items[3].key}.wav", items[3].wav)])
    whole = repeat.read_bytes()
    repeat.write_bytes(whole[: len(whole) - 2048 - len(items[3].wav) // 2])  # cut inside the last clip's audio
    report = index_shards([good, repeat], tmp_path / "set")
    assert sorted(r.key for r in report.index.samples) == sorted(c.key for c in items[:3])
    assert report.skips.nonzero() == {"duplicate_key": 1, "truncated_shard": 1}
    assert [r.key for r in report.index.pack_skipped] == [items[0].key, items[3].key]
