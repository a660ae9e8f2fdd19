"""`paralm data pack --from-hf / --from-lhotse`: a saved HF dataset and Lhotse manifests pack to the same samples
as the same clips packed from loose files (optional extras; skipped with the reason when not installed)."""

from __future__ import annotations

import numpy as np
import pytest
from foreignkit import clips, loose_manifest, paralm

from paralm.data.index import ShardIndex
from paralm.data.reader import SampleReader

SHORT = {"neutral": "neu", "happy": "hap", "sad": "sad", "angry": "ang"}


def _read_all(root) -> dict:
    reader = SampleReader(root)
    return {row.key: reader.read(row) for row in ShardIndex.load(root).samples}


def _assert_same(got: dict, reference: dict) -> None:
    assert sorted(got) == sorted(reference)
    for key, ref in reference.items():
        np.testing.assert_array_equal(got[key].audio, ref.audio)
        assert got[key].meta == ref.meta


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Five clips packed from loose WAV files + manifest, the way `paralm data pack` always packed."""
    tmp = tmp_path_factory.mktemp("loose")
    items = clips(5, seed=40)
    manifest = loose_manifest(tmp, items)
    proc = paralm("data", "pack", "--manifest", str(manifest), "--audio-root", str(tmp / "audio"),
                  "--out", str(tmp / "packed"))
    assert proc.returncode == 0, proc.stderr
    return items, _read_all(tmp / "packed")


def test_saved_hf_dataset_packs_to_the_same_samples_with_labels_mapped_by_name(reference, tmp_path):
    datasets = pytest.importorskip("datasets", reason="optional extra paralm[hf] (datasets) not installed")
    items, packed = reference
    names = sorted(SHORT.values())  # the corpus' own class names, in its own order
    ds = datasets.Dataset.from_dict({
        "audio": [{"bytes": c.wav, "path": f"{c.key}.wav"} for c in items],
        "label": [names.index(SHORT[c.emotion]) for c in items],
        "sentence": [c.transcript for c in items],
    })
    ds = ds.cast_column("audio", datasets.Audio(decode=False)).cast_column("label", datasets.ClassLabel(names=names))
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "hf"))
    fmap = tmp_path / "map.yaml"
    fmap.write_text("fields: {transcript: sentence, labels.gold.emotion: label}\ncorpus: mine\n"
                    "values:\n  labels.gold.emotion: {neu: neutral, hap: happy, sad: sad, ang: angry}\n")
    proc = paralm("data", "pack", "--from-hf", str(tmp_path / "hf"), "--map", str(fmap), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "packed 5 samples" in proc.stdout
    _assert_same(_read_all(tmp_path / "out"), packed)


def test_a_local_parquet_folder_packs_like_a_saved_dataset(reference, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets", reason="optional extra paralm[hf] (datasets) not installed")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))  # load_dataset converts into its cache
    items, packed = reference
    ds = datasets.Dataset.from_dict({"audio": [{"bytes": c.wav, "path": f"{c.key}.wav"} for c in items],
                                     "emotion": [c.emotion for c in items], "text": [c.transcript for c in items]})
    (tmp_path / "pq").mkdir()
    ds.cast_column("audio", datasets.Audio(decode=False)).to_parquet(str(tmp_path / "pq" / "train.parquet"))
    fmap = tmp_path / "map.yaml"
    fmap.write_text("fields: {transcript: text, labels.gold.emotion: emotion}\ncorpus: mine\n")
    proc = paralm("data", "pack", "--from-hf", str(tmp_path / "pq"), "--map", str(fmap), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    _assert_same(_read_all(tmp_path / "out"), packed)  # split "train" from the data file's name


def test_lhotse_cuts_pack_to_the_same_samples(reference, tmp_path):
    lhotse = pytest.importorskip("lhotse", reason="optional extra paralm[lhotse] not installed")
    items, packed = reference
    recordings, supervisions = [], []
    for c in items:
        path = tmp_path / f"{c.key}.wav"
        path.write_bytes(c.wav)
        rec = lhotse.Recording.from_file(str(path), recording_id=c.key)
        recordings.append(rec)
        supervisions.append(lhotse.SupervisionSegment(id=f"{c.key}-s", recording_id=c.key, start=0.0,
                                                      duration=rec.duration, text=c.transcript,
                                                      custom={"emotion": c.emotion}))
    cuts = lhotse.CutSet.from_manifests(recordings=lhotse.RecordingSet.from_recordings(recordings),
                                        supervisions=lhotse.SupervisionSet.from_segments(supervisions))
    cuts.to_file(str(tmp_path / "cuts.jsonl.gz"))
    fmap = tmp_path / "map.yaml"
    fmap.write_text("fields: {key: recording_id}\ncorpus: mine\nsplit: train\n")  # transcript, emotion: defaults
    proc = paralm("data", "pack", "--from-lhotse", str(tmp_path / "cuts.jsonl.gz"), "--map", str(fmap),
                  "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    _assert_same(_read_all(tmp_path / "out"), packed)


def test_pack_needs_exactly_one_input(tmp_path):
    proc = paralm("data", "pack", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "exactly one input" in proc.stderr


def test_a_missing_hf_folder_is_one_line_exit_2(tmp_path):
    proc = paralm("data", "pack", "--from-hf", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "not a local folder" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("package, flag, extra", [("datasets", "--from-hf", "paralm[hf]"),
                                                  ("lhotse", "--from-lhotse", "paralm[lhotse]")])
def test_without_the_optional_extra_the_error_names_it(tmp_path, monkeypatch, package, flag, extra):
    blocker = tmp_path / "blocked" / package
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(f"raise ImportError('No module named {package}')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "blocked"))  # shadows the installed package
    source = tmp_path / "in"
    source.mkdir()
    (tmp_path / "cuts.jsonl.gz").write_bytes(b"")
    target = str(source) if package == "datasets" else str(tmp_path / "cuts.jsonl.gz")
    proc = paralm("data", "pack", flag, target, "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and extra in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
