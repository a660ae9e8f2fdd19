"""Foreign corpora built in the tests: shards from webdataset.ShardWriter and GNU tar, a loose-file twin.

`clips(n)` gives deterministic clips (key, WAV bytes, transcript, emotion); every builder below writes the
same clips in another layout, so tests can check that each entry point yields the same samples.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from shardkit import encode, tone

from paralm.data.schema import EMOTIONS

PARALM = str(Path(sys.executable).parent / "paralm")
ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["neutral", "happy", "sad", "angry"]  # the foreign corpus' class ids 0..3


@dataclass
class Clip:
    key: str
    wav: bytes
    transcript: str
    emotion: str


def clips(n: int, seed: int = 0, sample_rate: int = 16000) -> list[Clip]:
    out = []
    for i in range(n):
        seconds = 0.4 + 0.1 * (i % 4)
        wav = encode(tone(seconds, sample_rate, seed + i, 180.0 + 20 * i), sample_rate, "WAV", "PCM_16")
        out.append(Clip(f"clip{seed}x{i:03d}", wav, f"the train was late number {i}", CLASSES[i % len(CLASSES)]))
    return out


def schema_meta(clip: Clip, corpus: str = "mine", split: str = "train", qa: bool = False,
                duration: float | None = None) -> dict:
    meta = {"key": clip.key, "transcript": clip.transcript, "corpus": corpus, "split": split,
            "labels": {"gold": {"emotion": clip.emotion}}}
    if duration is not None:
        meta["duration"] = duration
    if qa:
        meta["qa"] = [{"question": "How does the speaker feel?", "answer": clip.emotion, "type": "DP",
                       "origin": "human"}]
    assert clip.emotion in EMOTIONS
    return meta


def write_wds(folder: Path, samples: list[dict], maxcount: int = 3) -> list[Path]:
    """Write member dicts ({"__key__", ext: bytes}) with webdataset.ShardWriter; returns the shard paths."""
    import webdataset as wds

    folder.mkdir(parents=True, exist_ok=True)
    with wds.ShardWriter(str(folder / "train-%06d.tar"), maxcount=maxcount, verbose=0) as writer:
        for sample in samples:
            writer.write(sample)
    return sorted(folder.glob("*.tar"))


def write_with_tar(shard: Path, members: list[tuple[str, bytes]]) -> Path:
    """Write members (name, bytes) to loose files and pack them with the GNU `tar` command, in this order."""
    stage = shard.parent / f"{shard.stem}-files"
    stage.mkdir(parents=True)
    for name, data in members:
        (stage / name).write_bytes(data)
    subprocess.run(["tar", "-cf", str(shard), "-C", str(stage), *[n for n, _ in members]], check=True)
    return shard


def paralm(*args: str, cwd: Path | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    """Run the installed console script as a user would."""
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    return subprocess.run([PARALM, *args], cwd=cwd or ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def fit_overlay(tmp: Path, source: str) -> Path:
    """A 2-step fit overlay on experiments/debug_cpu.yaml training only on `source` (a YAML flow mapping)."""
    overlay = tmp / "fit_overlay.yaml"
    overlay.write_text(
        "trainer:\n  max_steps: 2\n  limit_val_batches: 0\n  callbacks: []\n  enable_checkpointing: false\n"
        f"  default_root_dir: {tmp}\n"
        f"data:\n  train_sources:\n    - {source}\n  val_sources: []\n  samples_per_epoch: 8\n"
        "  skip_log_path: " + str(tmp / "fit_skipped.jsonl") + "\n")
    return overlay


def loose_manifest(folder: Path, items: list[Clip], corpus: str = "mine", split: str = "train") -> Path:
    """The same clips as loose WAV files + a JSONL manifest (the input of `paralm data pack`)."""
    audio = folder / "audio"
    audio.mkdir(parents=True)
    lines = []
    for clip in items:
        (audio / f"{clip.key}.wav").write_bytes(clip.wav)
        meta = schema_meta(clip, corpus, split)
        lines.append(json.dumps({**meta, "audio": f"{clip.key}.wav"}))
    manifest = folder / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest
