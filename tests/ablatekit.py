"""A tiny emotional corpus for ablation tests: tones whose pitch follows the emotion, three splits.

Each clip has voice, gold labels, neutral_text, and C / CP / DP questions, like the demo corpus, at a
size that trains in seconds. Imported by the other test_ablate_* files.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from paralm.data.pack import pack

KIT_EMOTIONS = ("neutral", "happy", "sad", "angry")
PITCH = {"neutral": 140.0, "happy": 260.0, "sad": 110.0, "angry": 200.0}
AROUSAL = {"neutral": 0.4, "happy": 0.7, "sad": 0.2, "angry": 0.9}
SENTENCES = ("the box is on the table", "we meet at noon", "the bus leaves soon", "open the door now")


def _wav(emotion: str, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    wav = 0.3 * np.sin(2 * np.pi * PITCH[emotion] * t) + 0.01 * rng.standard_normal(t.shape)
    return wav.astype(np.float32)


def _record(i: int, voice: int, split: str, rng: random.Random) -> dict:
    emotion = KIT_EMOTIONS[i % len(KIT_EMOTIONS)]
    text = SENTENCES[i % len(SENTENCES)]
    return {
        "key": f"k{i:04d}", "transcript": text, "corpus": "kit", "split": split, "voice": f"v{voice}",
        "neutral_text": True,
        "labels": {"gold": {"emotion": emotion, "arousal": AROUSAL[emotion], "valence": 0.5,
                            "dominance": 0.5, "gender": "female" if voice % 2 else "male"}},
        "qa": [
            {"question": "How does the speaker feel?", "answer": f"The speaker sounds {emotion}.", "type": "DP",
             "origin": "template"},
            {"question": "What is said?", "answer": text, "type": "C", "origin": "template"},
            {"question": "Should I comfort the speaker?", "answer": f"They sound {emotion}, so respond to that.",
             "type": "CP", "origin": "template"},
        ],
    }


def make_kit_shards(tmp: Path, n: int = 48) -> Path:
    """n clips over 6 voices (4 train, 1 val, 1 test) packed as FLAC shards; returns the shard folder."""
    rng = random.Random(0)
    audio_root = Path(tmp) / "audio"
    audio_root.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        voice = i % 6
        split = "test" if voice == 5 else "val" if voice == 4 else "train"
        rec = _record(i, voice, split, rng)
        rel = f"{rec['key']}.wav"
        sf.write(audio_root / rel, _wav(rec["labels"]["gold"]["emotion"], 0.6 + 0.1 * (i % 4), i), 16000)
        records.append({"audio": rel, **rec})
    out = Path(tmp) / "shards"
    pack(records, audio_root, out, fmt="flac", overwrite=True)
    return out


KIT_MODEL = {
    "encoder": {"name": "whisper", "trainable": "frozen",
                "config": {"d_model": 32, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 64,
                           "num_mel_bins": 80, "max_source_positions": 1500, "init_std": 0.1}},
    "projector": {"name": "stack_mlp", "stack": 4},
    "llm": {"config": {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 1024},
            "tokenizer": "builtin:tiny", "trainable": "full"},
}


_SHARED: dict[str, tuple[Path, Path]] = {}


def shared_kit(tmp_path_factory) -> tuple[Path, Path]:
    """(kit shard folder, derived-data cache) made once per test session and shared by every ablation
    test: with `data.cache` pointing at the same folder, the annotation and generation run once."""
    if "kit" not in _SHARED:
        root = tmp_path_factory.mktemp("ablate_kit_shared")
        _SHARED["kit"] = (make_kit_shards(root), root / "derived")
    return _SHARED["kit"]


def kit_ablation(tmp: Path, shards: Path, rows: dict | None = None, cache: Path | None = None,
                 **overrides) -> dict:
    """An ablation mapping over the kit corpus (tiny model, few steps, one seed, no W&B)."""
    explicit = {"mode": "explicit", "metadata": "pred:acoustic_fit@oof"}
    doc = {
        "name": "kit", "out": str(Path(tmp) / "out"), "seeds": [0], "model": KIT_MODEL,
        "data": {"general": str(shards), "folds": 2, "eval_max_items": 24,
                 **({"cache": str(cache)} if cache else {})},
        "train": {"steps": 4, "batch_size": 4, "eval_batch_size": 16,
                  "optim": {"full_lr": 1e-3, "projector_lr": 1e-3, "warmup_steps": 0},
                  "generation": {"max_new_tokens": 8}},
        "logging": {"wandb": "disabled"},
        "rows": rows or {
            "baseline": {"sources": {"general": 1.0}},
            "explicit": {"sources": {"general": 1.0}, "train_prompt": explicit,
                         "eval_prompt": {"mode": "explicit", "metadata": "pred:acoustic_fit"}},
        },
        "headline": ["explicit", "baseline"],
    }
    doc.update(overrides)
    return doc


def write_ablation(tmp: Path, doc: dict) -> Path:
    path = Path(tmp) / "ablation.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path

