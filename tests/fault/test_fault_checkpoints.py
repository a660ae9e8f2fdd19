"""Checkpoint files under faults: death mid-write, damaged files, nothing to resume from, NaN weights.

Two training subprocesses are SIGKILLed while writing the step-20 checkpoint (once with half the bytes
in the temporary file, once with the file complete but its marker unwritten); `--resume auto` must take
step 10 and say why step 20 was passed over. The rest runs in-process on files written by the same
atomic writer.
"""

import json
import os
import sys
from pathlib import Path

import pytest
import torch
from faultkit import DEBUG_CONFIG, Case, callback, overlay, shared_shards, tail

from paralm.fault.checkpoint_io import (
    AtomicCheckpointIO,
    CheckpointError,
    NonFiniteCheckpointError,
    load_verified,
    marker_path,
    save_verified,
    verify,
)
from paralm.fault.exits import EXIT_NONFINITE_HALT, EXIT_RESUME_FAILED
from paralm.fault.resume import ResumeError, resolve_resume, scan
from paralm.lightning_cli import run_lightning_cli


@pytest.fixture(scope="module")
def died(tmp_path_factory):
    shards = shared_shards(tmp_path_factory)
    root = tmp_path_factory.mktemp("fault_ckpt_write")
    cases = {phase: Case(root / phase, shards) for phase in ("data", "marker")}
    launches = {phase: case.fit("die", callback("DieInCheckpointWrite", step=20, phase=phase), max_steps=25)
                for phase, case in cases.items()}
    runs = {phase: launch.wait() for phase, launch in launches.items()}
    files = {phase: sorted(p.name for p in case.ckpt.iterdir()) for phase, case in cases.items()}
    resumed = cases["marker"].fit("resume", max_steps=12, args=("--resume", "auto")).wait()
    return cases, runs, files, resumed


def test_death_mid_write_leaves_a_temp_file_or_an_unmarked_file_never_a_marked_partial_one(died):
    cases, runs, files, _ = died
    for run in runs.values():
        assert run.returncode == -9, tail(run)
    temp = [f for f in files["data"] if f.startswith(".epoch=0-step=20.ckpt.tmp-")]
    assert len(temp) == 1  # the half-written temporary file is there, under a name nobody loads
    assert sorted(set(files["data"]) - set(temp)) == ["epoch=0-step=10.ckpt", "epoch=0-step=10.ckpt.ok"]
    assert files["marker"] == ["epoch=0-step=10.ckpt", "epoch=0-step=10.ckpt.ok", "epoch=0-step=20.ckpt"]


@pytest.mark.parametrize("phase", ["data", "marker"])
def test_resume_selection_after_death_mid_write_takes_the_previous_complete_checkpoint(died, phase):
    cases, _, _, _ = died
    selection = scan([cases[phase].ckpt])
    assert selection.path.name == "epoch=0-step=10.ckpt"
    if phase == "marker":
        assert [(p.name, "no completeness marker" in why) for p, why in selection.rejected] == [
            ("epoch=0-step=20.ckpt", True)]
    else:
        assert len(selection.stray) == 1 and "interrupted writes" in selection.explain()


def test_resume_auto_through_the_cli_names_the_skipped_file_and_continues(died):
    cases, _, _, resumed = died
    assert resumed.returncode == 0, tail(resumed)
    assert "resuming from" in resumed.stderr and "epoch=0-step=10.ckpt" in resumed.stderr
    assert "passed over" in resumed.stderr and "step=20.ckpt" in resumed.stderr
    lines = cases["marker"].steps_file.read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines[-3:]] == [20, 11, 12]  # died after 20, went on from 10


# ---- damaged files, in-process ----------------------------------------------------------------------------
def _state(step: int) -> dict:
    return {"global_step": step, "epoch": 0, "state_dict": {"net.w": torch.full((64,), float(step))},
            "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(64)}}}]}


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _flip(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))


def _zero(p: Path) -> None:
    p.write_bytes(b"")


DAMAGE = {"truncated": (_truncate, "truncated"), "flipped_bytes": (_flip, "sha256"), "zero_bytes": (_zero, "0 bytes")}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_newest_checkpoints_fall_back_to_newest_valid_and_say_why(tmp_path, kind):
    damage, words = DAMAGE[kind]
    for step in (10, 20, 30):
        save_verified(_state(step), tmp_path / f"step={step}.ckpt")
    damage(tmp_path / "step=30.ckpt")
    damage(tmp_path / "step=20.ckpt")
    selection = scan([tmp_path])
    assert selection.path == tmp_path / "step=10.ckpt"
    assert [p.name for p, _ in selection.rejected] == ["step=30.ckpt", "step=20.ckpt"]
    assert all(words in why for _, why in selection.rejected)
    assert "step=30.ckpt" in selection.explain() and "step=20.ckpt" in selection.explain()
    assert resolve_resume("auto", [tmp_path]) == str(tmp_path / "step=10.ckpt")
    with pytest.raises(ResumeError, match=r"step=30\.ckpt.*refusing to substitute"):
        resolve_resume(str(tmp_path / "step=30.ckpt"), [tmp_path])
    with pytest.raises(CheckpointError, match="step=30.ckpt"):
        load_verified(tmp_path / "step=30.ckpt")


def test_order_follows_the_step_in_the_marker_not_file_times(tmp_path):
    for step in (30, 10):
        save_verified(_state(step), tmp_path / f"s{step}.ckpt")
    old = (tmp_path / "s30.ckpt").stat().st_mtime - 1000
    os.utime(tmp_path / "s30.ckpt", (old, old))
    assert scan([tmp_path]).path.name == "s30.ckpt"
    assert '"global_step": 30' in marker_path(tmp_path / "s30.ckpt").read_text()


def test_every_file_damaged_or_no_file_at_all_refuses_to_start_from_scratch(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ResumeError, match="refusing to start from scratch") as err:
        resolve_resume("auto", [empty])
    assert err.value.exit_code == EXIT_RESUME_FAILED
    assert resolve_resume("auto_or_new", [empty]) is None  # a first launch may start fresh ...
    save_verified(_state(10), tmp_path / "bad" / "step=10.ckpt")
    _flip(tmp_path / "bad" / "step=10.ckpt")
    with pytest.raises(ResumeError, match=r"step=10\.ckpt.*sha256"):  # ... but never over damaged files
        resolve_resume("auto_or_new", [tmp_path / "bad"])
    assert resolve_resume("none", [tmp_path / "bad"]) is None
    with pytest.raises(ResumeError, match="valid: none, auto, auto_or_new"):
        resolve_resume("latest", [empty])


def test_cli_asked_to_resume_with_nothing_there_exits_3_before_training(tmp_path, tmp_path_factory, capsys,
                                                                         monkeypatch):
    monkeypatch.setattr(sys, "argv", sys.argv[:1])  # the CLI rewrites sys.argv; give it back afterwards
    empty, ckpt = tmp_path / "nothing", tmp_path / "ckpt"
    empty.mkdir()
    cfg = overlay(tmp_path / "o.yaml", shared_shards(tmp_path_factory), ckpt, [], max_steps=2)
    code = run_lightning_cli(["fit", "--config", str(DEBUG_CONFIG), "--config", str(cfg),
                              "--resume", "auto", "--resume_dir", str(empty)])
    assert code == EXIT_RESUME_FAILED
    assert "no usable checkpoint" in capsys.readouterr().err
    assert not ckpt.exists()


# ---- non-finite state is never written ------------------------------------------------------------------
def test_checkpoint_with_nan_weights_is_refused_and_the_previous_file_kept(tmp_path):
    io_plugin = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io_plugin.save_checkpoint(_state(10), path)
    before = path.read_bytes()
    bad = _state(20)
    bad["optimizer_states"][0]["state"][0]["exp_avg"][3] = float("inf")
    with pytest.raises(NonFiniteCheckpointError, match=r"optimizer_states\.0\.state\.0\.exp_avg") as err:
        io_plugin.save_checkpoint(bad, path)
    assert err.value.exit_code == EXIT_NONFINITE_HALT
    bad = _state(20)
    bad["state_dict"]["net.w"][0] = float("nan")
    with pytest.raises(NonFiniteCheckpointError, match=r"state_dict\.net\.w"):
        io_plugin.save_checkpoint(bad, tmp_path / "new.ckpt")
    assert path.read_bytes() == before
    verify(path)
    assert not (tmp_path / "new.ckpt").exists() and not marker_path(tmp_path / "new.ckpt").exists()
