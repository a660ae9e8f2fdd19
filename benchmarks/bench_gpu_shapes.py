"""Model shapes and synthetic batches of the GPU throughput benchmark (random weights, no files).

Shapes follow the public configs: a Whisper-large-v3 encoder (32 layers, 1280 wide, 128 mels), a
Llama-3.2-1B-class and a Llama-3.1-8B-class decoder (128k vocabulary), LoRA r16 on the attention
projections, a stack-4 MLP projector. `--smoke` swaps in the tiny CPU shapes.

Only torch, transformers, peft (and the project modules built on them) are imported here: the batches
go through the project's own `Collator` with a duck-typed sample instead of the shard reader, so the
GPU path needs neither soundfile nor soxr.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch.nn.functional as F

from paralm.data.batch import Batch
from paralm.data.collate import Collator, FeedItem
from paralm.model.builders import tiny_llm_config, tiny_whisper_config
from paralm.model.config import EncoderConfig, LLMConfig, LoraSettings, ProjectorConfig, SpeechLMConfig

WHISPER_LARGE_V3 = dict(d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120,
                        num_mel_bins=128, max_source_positions=1500, init_std=0.02)
LLAMA_1B = dict(model_type="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                num_attention_heads=32, num_key_value_heads=8, head_dim=64, vocab_size=128256,
                max_position_embeddings=4096, rope_theta=500000.0, tie_word_embeddings=True)
LLAMA_8B = dict(model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=128256,
                max_position_embeddings=4096, rope_theta=500000.0, tie_word_embeddings=False)
LORA = LoraSettings(r=16, alpha=32, dropout=0.05, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
NAIVE_FRAMES = 3000  # 30 s of 10-ms mel frames


@dataclass(frozen=True)
class Shape:
    """One model size and its batch.

    Args:
        name: label in the results ("1B", "8B", "tiny").
        encoder: Whisper architecture overrides.
        llm: causal LM config dict (with model_type).
        batch_size: clips per step.
        clip_seconds: duration of every clip.
    """

    name: str
    encoder: dict
    llm: dict
    batch_size: int
    clip_seconds: float = 6.0


SHAPES = {
    "1B": Shape("1B", WHISPER_LARGE_V3, LLAMA_1B, batch_size=16),
    "8B": Shape("8B", WHISPER_LARGE_V3, LLAMA_8B, batch_size=16),
    "tiny": Shape("tiny", {}, tiny_llm_config(), batch_size=2, clip_seconds=1.0),
}


def speech_lm_config(shape: Shape) -> SpeechLMConfig:
    return SpeechLMConfig(
        encoder=EncoderConfig(name="whisper", config=tiny_whisper_config(**shape.encoder), trainable="frozen"),
        projector=ProjectorConfig(name="stack_mlp", stack=4),
        llm=LLMConfig(config=dict(shape.llm), tokenizer="builtin:tiny", trainable="lora", lora=LORA),
    )


@dataclass
class SyntheticSample:
    """Stands in for the shard reader's LoadedSample (same attributes the collator reads)."""

    key: str
    audio: np.ndarray
    sample_rate: int
    meta: dict
    shard: str = "synthetic"
    skipped: tuple = field(default_factory=tuple)


def _item(i: int, seconds: float, rng: np.random.Generator) -> FeedItem:
    audio = (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
    meta = {"key": f"gpu{i:04d}", "transcript": "a sentence said in some way", "duration": seconds,
            "corpus": "synthetic", "split": "train", "labels": {},
            "qa": [{"question": "How does the speaker sound, and why?",
                    "answer": "The speaker sounds calm and a little tired.", "type": "DP", "origin": "template"}]}
    return FeedItem(SyntheticSample(meta["key"], audio, 16000, meta), 0, "synthetic")


class PadTo30Collator(Collator):
    """Encoder input padded to 30 s (3000 frames), padding masked: the pad-to-30-s configuration."""

    def collate(self, items) -> tuple[Batch, int]:
        batch, missing = super().collate(items)
        batch.features = F.pad(batch.features, (0, max(0, NAIVE_FRAMES - batch.features.shape[-1])))
        return batch, missing


def synthetic_batches(tokenizer, audio_spec, shape: Shape, n_batches: int, pad_to_30: bool, seed: int = 0) -> list:
    """`n_batches` collated training batches of `shape.batch_size` clips of `shape.clip_seconds` each."""
    rng = np.random.default_rng(seed)
    collator = (PadTo30Collator if pad_to_30 else Collator)(tokenizer, audio_spec)
    b = shape.batch_size
    return [collator([_item(j * b + i, shape.clip_seconds, rng) for i in range(b)]) for j in range(n_batches)]


class Cycle:
    """A loader that serves the same few batches `length` times (data loading is not what is measured)."""

    def __init__(self, batches: list[Batch], length: int) -> None:
        self.batches, self.length = batches, int(length)

    def __iter__(self):
        return (self.batches[i % len(self.batches)] for i in range(self.length))

    def __len__(self) -> int:
        return self.length

