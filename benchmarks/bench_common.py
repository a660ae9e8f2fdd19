"""Shared pieces of the CPU benchmarks: the duration mix, a synthetic shard set, tiny models, timing.

The duration mix imitates conversational speech corpora: log-normal with a 5-s median, clipped to
1-30 s (most clips short, a long tail up to Whisper's 30-s window). Every benchmark builds what it
needs in a work directory from code; nothing is downloaded.
"""

from __future__ import annotations

import io
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from paralm.audio import AudioTokenSpec
from paralm.data.pack import FORMATS
from paralm.data.shards import write_shards
from paralm.data.sources import SourceSpec
from paralm.model.builders import tiny_speech_lm_config, tiny_whisper_config
from paralm.model.config import SpeechLMConfig
from paralm.model.llm import build_tokenizer
from paralm.model.speech_lm import audio_token_spec_for

SAMPLE_RATE = 16000
NAIVE_SECONDS = 30.0  # what naive pipelines pad every clip to (Whisper's window)


@dataclass(frozen=True)
class Scale:
    """Sizes of one benchmark run.

    Args:
        plan_clips: clips in the arithmetic frame-efficiency benchmark (a).
        loader_clips: clips written as shards for the training and cache benchmarks.
        loader_bench_clips: clips per pass of the loader benchmark (b).
        loader_repeats: timed passes per loader in (b); the median counts.
        train_steps: measured training steps per configuration.
        judge_requests: requests of the concurrent judge client.
        judge_sequential: requests of each sequential judge baseline (None: about 2 s worth).
        workers: dataloader workers.
        cache_encoder: encoder shape of the cache benchmark (Whisper tiny.en's; None: the debug model's).
    """

    plan_clips: int = 4000
    loader_clips: int = 160
    loader_bench_clips: int = 640
    loader_repeats: int = 3
    train_steps: int = 12
    judge_requests: int = 640
    judge_sequential: int | None = None
    workers: int = 2
    cache_encoder: dict | None = field(default_factory=lambda: dict(WHISPER_TINY_SHAPE))


WHISPER_TINY_SHAPE = dict(
    d_model=384, encoder_layers=4, encoder_attention_heads=6, encoder_ffn_dim=1536, init_std=0.02
)
FULL = Scale()
QUICK = Scale(
    plan_clips=400,
    loader_clips=8,
    loader_bench_clips=16,
    loader_repeats=1,
    train_steps=2,
    judge_requests=48,
    judge_sequential=8,
    workers=1,
    cache_encoder=None,
)


def duration_mix(
    n: int, seed: int = 0, median: float = 5.0, low: float = 1.0, high: float = 30.0
) -> np.ndarray:
    """(n,) clip durations in seconds: log-normal around `median`, clipped to [low, high]."""
    rng = np.random.default_rng(seed)
    return np.clip(np.exp(rng.normal(np.log(median), 0.75, size=n)), low, high).round(3)


def clip_audio(seconds: float, seed: int) -> np.ndarray:
    """A voiced-like signal: a few harmonics with a slow pitch glide, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SAMPLE_RATE))) / SAMPLE_RATE
    f0 = 120 + 80 * rng.random() + 20 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    wav = sum(0.2 / k * np.sin(k * phase) for k in (1, 2, 3))
    return (wav + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)


def _meta(key: str, seconds: float, split: str) -> dict:
    return {
        "key": key,
        "transcript": f"words spoken in clip {key}",
        "duration": float(seconds),
        "corpus": "bench",
        "split": split,
        "source_kind": "general",
        "labels": {"gold": {"emotion": "neutral", "arousal": 0.5, "valence": 0.5}},
        "qa": [
            {
                "question": "How does the speaker sound?",
                "answer": "The speaker sounds calm.",
                "type": "DP",
                "origin": "template",
            }
        ],
    }


def write_mix_shards(
    out: Path, durations: np.ndarray, split: str = "train", seed: int = 0, audio_format: str = "flac"
) -> Path:
    """Shard set with one clip per duration under `out` (audio_format: a `paralm data pack` format); returns `out`."""
    fmt = FORMATS[audio_format]

    def samples():
        for i, d in enumerate(durations):
            buf = io.BytesIO()
            sf.write(
                buf,
                clip_audio(float(d), seed * 100_003 + i),
                SAMPLE_RATE,
                format=fmt.sf_format,
                subtype=fmt.subtype,
            )
            yield _meta(f"b{seed}x{i:05d}", float(d), split), buf.getvalue(), fmt.ext

    write_shards(samples(), out, prefix="bench", shard_bytes=64 << 20)
    return out


def source(path: Path, name: str = "mix", split: str = "train") -> SourceSpec:
    return SourceSpec(name=name, path=str(path), kind="general", split=split)


def tiny_config(encoder: dict | None = None, **kwargs) -> SpeechLMConfig:
    """The debug model; `encoder` overrides the tiny Whisper's architecture (e.g. tiny.en's shape)."""
    cfg = tiny_speech_lm_config(**kwargs)
    if encoder is not None:
        cfg.encoder.config = tiny_whisper_config(**encoder)
    return cfg


def tokenizer_and_spec(cfg: SpeechLMConfig) -> tuple[object, AudioTokenSpec]:
    tok = build_tokenizer(cfg.llm, cfg.placeholder_token)
    return tok, audio_token_spec_for(cfg, tok)


def machine_info() -> dict[str, str]:
    return {
        "cpu cores (os.cpu_count)": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "load average (1 min) at start": f"{os.getloadavg()[0]:.2f}",
    }


class Timer:
    """Wall-clock seconds of a `with` block."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
