"""benchmarks/gpu_throughput.py --smoke runs on CPU with only torch, lightning, transformers and peft."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ("wandb", "webdataset", "openai", "soundfile", "soxr")
# Setting sys.modules[name] = None makes every import of `name` fail, as if it were not installed.
RUNNER = f"""
import runpy, sys
for name in {BLOCKED!r}:
    sys.modules[name] = None
sys.argv = ["gpu_throughput.py", "--smoke", "--out", sys.argv[1]]
runpy.run_path({str(ROOT / "benchmarks" / "gpu_throughput.py")!r}, run_name="__main__")
"""


def test_smoke_mode_runs_every_config_without_blocked_modules(tmp_path):
    out = tmp_path / "gpu.md"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(out)], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = {line.split("|")[1].strip(): line for line in out.read_text().splitlines() if line.startswith("| ")}
    for name in ("1B eager bucketed", "1B pad-to-30-s", "8B eager"):
        cells = [c.strip() for c in rows[name].split("|")[1:-1]]
        assert float(cells[1]) > 0 and float(cells[2].replace(",", "")) > 0, rows[name]  # samples/s, tokens/s
        assert cells[4].endswith("%") and cells[5].endswith("%"), rows[name]  # encoder share, MFU
    assert float(rows["1B eager bucketed"].split("|")[8]) > 0  # project vs bare-loop ratio
    for name in ("8B compiled", "1B FSDP (PEFT model, 1 GPU)"):
        assert "skipped: needs CUDA" in rows[name]
    assert "failed" not in out.read_text()
