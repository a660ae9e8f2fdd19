"""Tiny end-to-end training pieces for tests: packed shards, a tiny SpeechLMModule, an attached datamodule."""

from __future__ import annotations

from pathlib import Path

from shardkit import make_corpus

from paralm.data.datamodule import MixtureDataModule
from paralm.data.pack import pack
from paralm.data.sources import SourceSpec
from paralm.lit_module import SpeechLMModule
from paralm.model.builders import tiny_speech_lm_config
from paralm.optim import OptimConfig


def tiny_shards(tmp: Path, n: int = 24, seed: int = 0, durations=(0.6, 1.6)) -> Path:
    """n clips packed as FLAC shards + index under tmp/shards (splits as shardkit assigns them)."""
    corpus = make_corpus(tmp, n, seed=seed, durations=durations)
    out = Path(tmp) / "shards"
    pack(corpus.records, corpus.audio_root, out, fmt="flac", overwrite=True)
    return out


def tiny_module(llm_trainable: str = "lora", lr: float = 3e-3) -> SpeechLMModule:
    cfg = tiny_speech_lm_config(llm_trainable=llm_trainable)
    return SpeechLMModule(cfg, optim=OptimConfig(projector_lr=lr, lora_lr=lr, full_lr=lr, warmup_steps=0))


def tiny_datamodule(shards: Path, module: SpeechLMModule, batch_size: int = 4, **kwargs) -> MixtureDataModule:
    dm = MixtureDataModule(
        train_sources=[SourceSpec(name="general", path=str(shards), kind="general", split="train")],
        val_sources=[SourceSpec(name="general", path=str(shards), kind="general", split="val")],
        batch_size=batch_size, num_workers=0, **kwargs)
    dm.attach(module.tokenizer, module.audio_token_spec)
    return dm
