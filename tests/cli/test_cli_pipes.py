"""A reader that goes away (`paralm data inspect S | head`) ends the command quietly, not as a bug."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_output_into_a_closed_pipe_is_not_reported_as_a_bug():
    paralm = shutil.which("paralm", path=str(Path(sys.executable).parent))
    proc = subprocess.Popen([paralm, "data", "inspect", str(ROOT / "data/demo/shards/general")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    proc.stdout.close()  # closed before the command prints anything: its first write meets a broken pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "unexpected error" not in err and "Traceback" not in err
