"""Unsafe files: pickled checkpoints that would run code, and shard sets whose members are pickles, carry
escaping or control-character names, or point at `pipe:` commands. Each payload, if it ever ran, would
create a marker file; the tests check it never appears, that training counts what it refused, and that
nothing is written outside the run's folders. Plus a scan of the source for unsafe loaders.
"""

import ast
import hashlib
import io
import json
import os
import pickle
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from faultkit import DEBUG_CONFIG, REPO, overlay, shared_shards, tail
from shardkit import make_corpus

from paralm.data.index import IndexRow, ShardIndex, ShardRow
from paralm.data.pack import pack
from paralm.data.reader import iter_samples
from paralm.data.tario import TarWriter
from paralm.fault.checkpoint_io import CheckpointError, load_verified
from paralm.fault.exits import EXIT_RESUME_FAILED

SCANNED = ("paralm", "callbacks", "data", "benchmarks", "tests", "experiments", "sweeps")


class Payload:
    """Unpickling this object would create `path` (a stand-in for any command)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


# ---- pickled checkpoints ------------------------------------------------------------------------------
def _malicious_checkpoints(folder: Path, payload: Path) -> list[Path]:
    """The same payload as a raw pickle and inside a torch.save zip archive, each with a valid marker
    (an attacker who can write the file can write its marker too)."""
    raw = folder / "raw.ckpt"
    raw.write_bytes(pickle.dumps({"state_dict": {}, "evil": Payload(payload)}))
    buf = io.BytesIO()
    torch.save({"state_dict": {}, "evil": Payload(payload)}, buf)
    zipped = folder / "zipped.ckpt"
    zipped.write_bytes(buf.getvalue())
    assert zipfile.is_zipfile(zipped)
    for path in (raw, zipped):
        data = path.read_bytes()
        Path(f"{path}.ok").write_text(json.dumps({"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}))
    return [raw, zipped]


def test_malicious_pickle_checkpoint_fails_to_load_and_its_payload_never_runs(tmp_path):
    payload = tmp_path / "PWNED"
    for path in _malicious_checkpoints(tmp_path, payload):
        with pytest.raises(CheckpointError, match=f"{path.name} failed to load with weights_only=True"):
            load_verified(path)
        assert not payload.exists()


def test_cli_resume_and_export_refuse_a_malicious_checkpoint(tmp_path, tmp_path_factory, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", sys.argv[:1])  # the CLI rewrites sys.argv; give it back afterwards
    from paralm.export import main as export_main
    from paralm.lightning_cli import run_lightning_cli

    payload = tmp_path / "PWNED"
    raw, zipped = _malicious_checkpoints(tmp_path, payload)
    with pytest.raises(CheckpointError):
        export_main([str(zipped), "--out", str(tmp_path / "export")])
    cfg = overlay(tmp_path / "o.yaml", shared_shards(tmp_path_factory), tmp_path / "ckpt", [], max_steps=1)
    code = run_lightning_cli(["fit", "--config", str(DEBUG_CONFIG), "--config", str(cfg), "--resume", str(raw)])
    assert code == EXIT_RESUME_FAILED
    assert "weights_only" in capsys.readouterr().err
    assert not payload.exists()


# ---- the source never loads pickles unsafely ----------------------------------------------------------
def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def _kw(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def test_every_torch_load_passes_weights_only_true_and_no_unsafe_loader_is_used():
    checked, problems = 0, []
    files = [p for d in SCANNED if (REPO / d).is_dir() for p in (REPO / d).rglob("*.py")]
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for call, func in _calls(tree):
            where = f"{path.relative_to(REPO)}:{call.lineno}"
            if func in ("torch.load", "torch.serialization.load"):
                checked += 1
                value = _kw(call, "weights_only")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    problems.append(f"{where}: {func} without weights_only=True")
            elif func in ("pickle.load", "pickle.loads", "pickle.Unpickler", "dill.load", "dill.loads",
                          "yaml.unsafe_load", "yaml.full_load", "marshal.loads") and "tests" not in path.parts:
                problems.append(f"{where}: {func}")
            elif func == "yaml.load" and not (
                    (loader := _kw(call, "Loader")) is not None and "Safe" in ast.unparse(loader)):
                problems.append(f"{where}: yaml.load without a safe Loader")
            elif func in ("np.load", "numpy.load"):
                value = _kw(call, "allow_pickle")
                if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
                    problems.append(f"{where}: {func} with allow_pickle")
    assert checked >= 3  # the scan does see the loaders (paralm/checkpointing.py, paralm/model/weights.py, tests)
    assert problems == []


def test_source_scan_would_catch_a_torch_load_without_weights_only():
    bad = ast.parse("import torch\nx = torch.load('f.ckpt', map_location='cpu')\n")
    ((call, func),) = [(c, f) for c, f in _calls(bad) if f == "torch.load"]
    assert _kw(call, "weights_only") is None


# ---- unsafe shard members through the training path ------------------------------------------------------
UNSAFE = {  # member name pattern -> the skip reason training must count
    "{key}.pyd": "unsupported_member",
    "{key}.pickle": "unsupported_member",
    "../../{key}.flac": "unsafe_member_name",
    "/tmp/{key}.flac": "unsafe_member_name",
    "{key}\x1b]0;owned\x07.flac": "unsafe_member_name",
}


def _evil_shards(root: Path, payload: Path) -> tuple[Path, dict[str, str]]:
    """A shard set of clean training samples plus one sample per UNSAFE member name (pickles carry the
    payload) and one whose shard is a `pipe:` command; returns (folder, expected reason per key)."""
    corpus = make_corpus(root, 24, seed=7, durations=(0.3, 0.6))
    pack([dict(r, split="train") for r in corpus.records], corpus.audio_root, root / "clean")
    clean = list(iter_samples(ShardIndex.load(root / "clean")))
    out = root / "evil"
    out.mkdir()
    index, expected = ShardIndex(root=out), {}
    tar = TarWriter(out / "evil-000000.tar")
    for i, (row, meta, audio) in enumerate(clean):
        pattern = list(UNSAFE)[i] if i < len(UNSAFE) else None
        name = pattern.format(key=meta["key"]) if pattern else row.audio_member
        data = pickle.dumps(Payload(payload)) if pattern and UNSAFE[pattern] == "unsupported_member" else audio
        audio_at = tar.add(name, data)
        json_bytes = json.dumps(meta).encode()
        json_at = tar.add(f"{meta['key']}.json", json_bytes)
        index.samples.append(IndexRow.from_meta(meta, tar.path.name, name,
                                                (audio_at, len(data), json_at, len(json_bytes))))
        if pattern:
            expected[meta["key"]] = UNSAFE[pattern]
    sha, size = tar.close()
    index.shards.append(ShardRow(tar.path.name, len(index.samples), sum(r.duration for r in index.samples), sha, size))
    index.save()
    return out, expected


def _pipe_row(shards: Path, payload: Path) -> str:
    """Point one more index row at `pipe:touch <payload>`; returns its key."""
    doc = json.loads((shards / "index.json").read_text())
    row = dict(doc["samples"][-1], key="s_pipe", shard=f"pipe:touch {payload}")
    doc["samples"].append(row)
    (shards / "index.json").write_text(json.dumps(doc))
    return row["key"]


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def evil_run(tmp_path_factory):
    from faultkit import fit

    root = tmp_path_factory.mktemp("unsafe_shards")
    payload = root / "PWNED"
    shards, expected = _evil_shards(root / "data", payload)
    run_dir = root / "run"
    run_dir.mkdir()
    cfg = run_dir / "o.yaml"
    skip_log = run_dir / "skipped.jsonl"
    source = {"name": "general", "path": str(shards), "kind": "general", "split": "train"}
    cfg.write_text(json.dumps({
        "trainer": {"max_steps": -1, "max_epochs": 1, "limit_val_batches": 0, "logger": False, "enable_model_summary": False,
                    "default_root_dir": str(run_dir / "runs"),
                    "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"dirpath": str(run_dir / "ckpt")}}]},
        "data": {"train_sources": [source], "val_sources": [], "batch_size": 4, "samples_per_epoch": None,
                 "num_workers": 2, "max_skip_rate": 0.9, "skip_log_path": str(skip_log)},
    }))
    before = _tree(root)
    run = fit(run_dir, cfg).wait()
    return root, payload, expected, run, skip_log, before


def test_pickle_members_and_unsafe_names_are_counted_and_never_opened(evil_run):
    root, payload, expected, run, skip_log, _ = evil_run
    assert run.returncode == 0, tail(run)
    assert not payload.exists()
    skipped = [json.loads(line) for line in skip_log.read_text().splitlines()]
    assert {r["key"]: r["reason"] for r in skipped} == expected  # one epoch: every planned item was tried
    ckpts = [torch.load(p, weights_only=True) for p in (root / "run" / "ckpt").glob("*.ckpt")]
    ckpt = max(ckpts, key=lambda c: c["global_step"])  # end of the epoch
    counts = ckpt["MixtureDataModule"]["skips"][0]["skips"]["counts"]
    for reason in ("unsupported_member", "unsafe_member_name"):  # one count per planned QA item
        assert counts[reason] == sum(r["reason"] == reason for r in skipped) >= 2


def test_training_on_unsafe_shards_writes_nothing_outside_its_folders(evil_run):
    root, payload, _, run, _, before = evil_run
    assert run.returncode == 0, tail(run)
    new = _tree(root) - before
    assert new and all(p.startswith("run") for p in new), sorted(p for p in new if not p.startswith("run"))
    assert not Path("/tmp/s00003.flac").exists() and not payload.exists()
    leaked = [p for p in root.parent.iterdir() if p.name.startswith(("s0", "owned"))]
    assert leaked == []


def test_pipe_shard_url_is_refused_and_never_executed(tmp_path):
    from paralm.data.reader import SampleReader, SkipSample

    payload = tmp_path / "PIPED"
    shards, _ = _evil_shards(tmp_path / "data", tmp_path / "unused")
    key = _pipe_row(shards, payload)
    index = ShardIndex.load(shards)
    row = next(r for r in index.samples if r.key == key)
    reader = SampleReader(shards)
    with pytest.raises((SkipSample, ValueError), match="pipe:"):
        reader.read(row)
    assert not payload.exists()
    assert os.listdir(tmp_path) == ["data"]


def test_pipe_shard_row_in_the_training_plan_is_counted_not_fatal(tmp_path):
    from feedkit import make_audio_spec, make_tokenizer

    from paralm.data.datamodule import MixtureDataModule
    from paralm.data.sources import SourceSpec

    payload = tmp_path / "PIPED"
    shards, expected = _evil_shards(tmp_path / "data", tmp_path / "unused")
    _pipe_row(shards, payload)
    dm = MixtureDataModule(train_sources=[SourceSpec("g", str(shards))], batch_size=4, num_workers=0,
                           max_skip_rate=0.9)
    tok = make_tokenizer()
    dm.attach(tok, make_audio_spec(tok))
    try:
        for _ in dm.train_dataloader():
            pass
    finally:
        assert not payload.exists()
    stats = dm.data_stats("train")
    assert stats["skip_unsupported_member"] >= 1 + sum(r == "unsupported_member" for r in expected.values())
