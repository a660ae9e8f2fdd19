"""A 2-hour WAV packs: one sample of the full length, written in one piece and listed in the index."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from paralm.data.index import ShardIndex

PARALM = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "paralm")
HOURS = 2.0
SR = 16000


def write_long_wav(path: Path, seconds: float) -> None:
    """A quiet tone written a minute at a time, so the test never holds the whole clip in memory."""
    t = np.arange(60 * SR, dtype=np.float32) / SR
    minute = (0.1 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as f:
        for _ in range(int(seconds // 60)):
            f.write(minute)


@pytest.mark.slow  # writes and encodes 2 h of audio (~230 MB WAV): about 35 s on the 2-core box
def test_a_two_hour_wav_packs_whole(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    write_long_wav(audio / "long.wav", HOURS * 3600)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"key": "long", "audio": "long.wav", "transcript": "a long recording",
                                    "corpus": "kit", "split": "train"}) + "\n")
    proc = subprocess.run([PARALM, "data", "pack", "--manifest", str(manifest), "--audio-root", str(audio),
                           "--out", str(tmp_path / "out"), "--no-progress"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    index = ShardIndex.load(tmp_path / "out")
    assert [r.key for r in index.samples] == ["long"]
    assert index.samples[0].duration == pytest.approx(HOURS * 3600, abs=0.01)
    assert not (tmp_path / "out" / "pack_skipped.jsonl").read_text().strip()
