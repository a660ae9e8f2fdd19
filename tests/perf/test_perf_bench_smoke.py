"""benchmarks/run.py runs every benchmark end to end at tiny sizes and writes a results table."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_writes_every_section_with_numbers(tmp_path):
    out = tmp_path / "results.md"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(out),
                           "--workdir", str(tmp_path / "work")], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    text = out.read_text()
    sections = re.findall(r"^## \((\w)\) ", text, flags=re.MULTILINE)
    assert sections == list("abcdef")
    assert "| torch |" in text and "| cpu cores (os.cpu_count) |" in text
    for key in "abcdef":
        body = text.split(f"## ({key})")[1].split("\n## ")[0]
        values = [line.split("|")[2] for line in body.splitlines() if line.startswith("| ") and "measure" not in line]
        assert values and all(re.search(r"\d", v) for v in values), (key, body)
    c_gap = re.search(r"max abs loss difference over \d+ steps on the same batches.*\| (\S+) \|", text)
    assert c_gap and float(c_gap.group(1)) <= 1e-3
    assert re.search(r"identical rerun: requests sent \(client / server\), cache hits \| 0 / 0, ", text)


def test_loader_breakdown_prints_every_stage_for_both_loaders_and_formats():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "loader_breakdown.py"), "--clips", "8",
                           "--passes", "1"], capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| flac,") or line.startswith("| wav,")]
    assert [r.split("|")[1].strip() for r in rows] == [
        "flac, real length", "flac, padded to 30 s", "wav, real length", "wav, padded to 30 s"]
    for row in rows:
        total, *stages = (float(c) for c in row.split("|")[2:-1])
        assert total > 0 and all(v >= 0 for v in stages[:-1])  # "other" may round below zero
        assert sum(stages) == pytest.approx(total, abs=0.02 * len(stages))
    assert float(rows[1].split("|")[7]) > float(rows[0].split("|")[7])  # log-mel grows with the padding


@pytest.mark.slow
def test_demo_jobs_benchmark_measures_all_three_settings_through_paralm_fit(tmp_path):
    out = tmp_path / "demo_jobs.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_demo_jobs.py"), "--steps", "2",
                           "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| A") or line.startswith("| B")
            or line.startswith("| C")]
    assert [r[2] for r in rows] == ["A", "B", "C"]
    assert rows[0].endswith("| 1.00x |") and all(re.search(r"\| \d+\.\d\d \| \d+\.\d\dx \|$", r) for r in rows)


@pytest.mark.slow
def test_packed_loss_benchmark_times_both_loss_paths_of_a_demo_row_and_reports_their_loss_gap(tmp_path):
    out = tmp_path / "packed_loss.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_packed_loss.py"), "--steps", "2",
                           "--rows", "implicit", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    row = next(line for line in out.read_text().splitlines() if line.startswith("| implicit |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[1]) > 0 and float(cells[2]) > 0 and cells[3].endswith("x")
    assert float(cells[5]) < 1e-3  # same batches, same seed: rounding only
