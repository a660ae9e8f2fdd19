"""The layer rules of the README's "What is where" hold: `lint-imports` checks the contracts in
pyproject.toml ([tool.importlinter]) exactly as `make lint` does. Skipped with the reason when
import-linter (dev extra) is not installed."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).parent / "lint-imports"
needs_linter = pytest.mark.skipif(not LINT.exists(), reason="import-linter not installed (pip install -e '.[dev]')")


def _lint(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


@needs_linter
def test_every_import_contract_is_kept():
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "Contracts: 4 kept, 0 broken." in done.stdout


@needs_linter
def test_a_torch_import_in_judge_breaks_the_torch_free_contract(tmp_path):
    for name in ("paralm", "callbacks"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "paralm" / "judge" / "uses_torch.py").write_text("import torch\n")
    done = _lint(tmp_path, pythonpath=tmp_path)
    assert done.returncode == 1
    assert "Contracts: 3 kept, 1 broken." in done.stdout
    assert "paralm.judge.uses_torch -> torch" in done.stdout
