"""No key in any message the config parser prints (issue 14, break 1).

The secret check runs after parsing succeeds, so a parse error that quotes a value used to print the
key into the job log (`Given value: ... 'sk-...'`). Run as the user runs it: the installed console
script, stdout and stderr both searched. The parser's own error line is repeated last, one line.
"""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

from paralm.secret_guard import MaskingStream, mask_values, secret_values

ROOT = Path(__file__).resolve().parents[2]
PARALM = ROOT / ".venv" / "bin" / "paralm"
KEY = "sk-canary" + "0123456789abcdefghijklmnop"  # key-shaped; never a real key


def _paralm(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(PARALM), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_api_key_under_a_callback_in_a_config_file_is_never_printed(tmp_path):
    config = tmp_path / "judge.yaml"
    config.write_text("trainer:\n  callbacks:\n    - class_path: callbacks.JudgeEvalCallback\n"
                      f"      init_args: {{api_key: \"{KEY}\", judge_model: plain-words-not-masked}}\n")
    proc = _paralm(["fit", "--config", "experiments/debug_cpu.yaml", "--config", str(config)])
    assert proc.returncode == 2
    assert KEY not in proc.stdout + proc.stderr and "***" in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("paralm fit: error:") and "api_key" in last and "--help" in last


def test_a_key_given_to_an_option_of_the_wrong_type_is_never_printed():
    proc = _paralm(["validate", "--config", "experiments/debug_cpu.yaml", "--data.batch_size", KEY])
    assert proc.returncode == 2
    assert KEY not in proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("paralm validate: error:") and "data.batch_size" in last


def test_masking_stream_masks_a_key_split_across_writes_and_secret_named_values():
    sink = io.StringIO()
    stream = MaskingStream(sink, values=secret_values({"judge": {"api_key": "hunter2-plain"}}))
    for part in ("Given value: ", KEY[:10], KEY[10:], " and hunter2-plain\n", "tail without newline ", KEY[:5]):
        stream.write(part)
    stream.flush()
    assert sink.getvalue() == "Given value: *** and ***\ntail without newline sk-ca"
    assert mask_values(f"x {KEY} y", ["abc"]) == "x *** y" and mask_values("abc", ["abc"]) == "abc"
