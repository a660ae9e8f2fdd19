"""A malicious pickle given to `--ckpt_path`, with a valid completeness marker (whoever can write the
file can write its marker too), is refused by the weights-only load and its payload never runs; the
`--resume PATH` and `export` routes are covered in test_security_unsafe_files.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_security_unsafe_files import _malicious_checkpoints

from paralm.fault.exits import EXIT_RESUME_FAILED
from paralm.lightning_cli import run_lightning_cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("which", ["raw_pickle", "torch_zip"])
def test_malicious_ckpt_path_is_refused_with_exit_3_and_its_payload_never_runs(tmp_path, monkeypatch, capfd, which):
    monkeypatch.setattr(sys, "argv", sys.argv[:1])
    monkeypatch.chdir(ROOT)
    payload = tmp_path / "PWNED"
    ckpt = dict(zip(["raw_pickle", "torch_zip"], _malicious_checkpoints(tmp_path, payload), strict=True))[which]
    code = run_lightning_cli(["validate", "--config", "experiments/debug_cpu.yaml", f"--ckpt_path={ckpt}",
                              f"--trainer.default_root_dir={tmp_path / 'runs'}"])
    last = capfd.readouterr().err.strip().splitlines()[-1]
    assert code == EXIT_RESUME_FAILED, last
    assert "weights_only" in last and ckpt.name in last
    assert not payload.exists()
