"""`--ckpt_path` obeys the same rule as `--resume PATH`: no file is read before its marker checks out.

Lightning's CLI loads `--ckpt_path` first (to merge its hyper_parameters into the config), so an
unmarked or truncated file used to be read and gave a raw RuntimeError with exit 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from paralm.fault.checkpoint_io import save_verified
from paralm.fault.exits import EXIT_RESUME_FAILED
from paralm.lightning_cli import run_lightning_cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_reads(monkeypatch):
    """Fail loudly if anything torch.loads a file (the refusal must come first)."""
    monkeypatch.setattr(sys, "argv", sys.argv[:1])
    monkeypatch.chdir(ROOT)

    def refuse(*args, **kwargs):
        raise AssertionError(f"torch.load called before the marker was checked: {args[:1]}")

    monkeypatch.setattr(torch, "load", refuse)


def _validate(ckpt: Path, root: Path) -> int:
    return run_lightning_cli(["validate", "--config", "experiments/debug_cpu.yaml", f"--ckpt_path={ckpt}",
                              f"--trainer.default_root_dir={root}"])


def test_unmarked_ckpt_path_exits_3_with_one_line_and_is_never_read(tmp_path, no_reads, capfd):
    ckpt = tmp_path / "plain.ckpt"
    ckpt.write_bytes(b"PK\x03\x04 not a checkpoint that anyone vouched for")
    assert _validate(ckpt, tmp_path / "runs") == EXIT_RESUME_FAILED
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--ckpt_path" in err[0] and "no completeness marker" in err[0]
    assert "Traceback" not in "\n".join(err)


def test_truncated_ckpt_path_exits_3_naming_the_size(tmp_path, no_reads, capfd):
    ckpt = tmp_path / "cut.ckpt"
    save_verified({"global_step": 4, "state_dict": {"w": torch.zeros(64)}}, ckpt)
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    assert _validate(ckpt, tmp_path / "runs") == EXIT_RESUME_FAILED
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"is {len(data) // 2} bytes, marker says {len(data)}" in err[0]
