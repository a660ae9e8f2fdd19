"""Tiny, offline building blocks for the data-feed tests: a tokenizer, an audio spec, shard sets.

Everything is built in the test's tmp dir from code (no hub, no downloads): a byte-level BPE tokenizer
trained on a few sentences with the audio placeholder as a special token, and shard sets written with
the real `write_shards` from sine-tone WAV clips of chosen durations.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from paralm.audio import AudioTokenSpec, ConvLayer, FeatureSpec
from paralm.data.shards import write_shards

PLACEHOLDER = "<|audio|>"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CORPUS = [
    "Instruction: How does the speaker feel? Follow the text instruction based on the following audio:",
    "Paralinguistic cues: emotion: angry; arousal: 0.72 (high); valence: 0.21 (low); dominance: mid unknown",
    "The speaker sounds happy and calm. She is sad because the test failed. gender female male",
    "What is said in the clip? They talk about the weather and the train being late again.",
]


def make_tokenizer(chat_template: bool = True):
    """A ~400-token byte-level BPE tokenizer with <pad>, <s>, </s> and the audio placeholder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<s>", "</s>", PLACEHOLDER, "<|user|>", "<|system|>", "<|assistant|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens=[PLACEHOLDER, "<|user|>", "<|system|>", "<|assistant|>"],
    )
    if chat_template:
        hf.chat_template = CHAT_TEMPLATE
    return hf


def make_audio_spec(tokenizer, stack: int = 2, n_mels: int = 16) -> AudioTokenSpec:
    """A Whisper-like front end (two convs, stride 2) with a small mel count; stack k frames per token."""
    return AudioTokenSpec(
        features=FeatureSpec(n_mels=n_mels),
        encoder_convs=(ConvLayer(3, 1, 1), ConvLayer(3, 2, 1)),
        chunk_frames=3000,
        stack=stack,
        placeholder_token_id=tokenizer.convert_tokens_to_ids(PLACEHOLDER),
        placeholder_token=PLACEHOLDER,
    )


def wav_bytes(seconds: float, sample_rate: int = 16000, freq: float = 220.0) -> bytes:
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sample_rate, format="WAV")
    return buf.getvalue()


def sample_meta(key: str, seconds: float, split: str, n_qa: int = 1, kind: str = "general") -> dict:
    """Schema-valid metadata with gold labels, two annotators ("ser", "ser@oof") and n_qa QA pairs."""
    return {
        "key": key,
        "transcript": f"words of {key}",
        "duration": seconds,
        "corpus": "feedkit",
        "split": split,
        "source_kind": kind,
        "labels": {
            "gold": {
                "emotion": "angry",
                "arousal": 0.72,
                "valence": 0.21,
                "dominance": 0.5,
                "gender": "female",
            },
            "pred": {
                "ser": {
                    "emotion": "sad",
                    "arousal": 0.30,
                    "valence": 0.35,
                    "dominance": 0.61,
                    "version": "1",
                },
                "ser@oof": {
                    "emotion": "happy",
                    "arousal": 0.65,
                    "valence": 0.8,
                    "dominance": 0.4,
                    "version": "1",
                },
            },
        },
        "qa": [
            {
                "question": f"How does the speaker of {key} feel? ({q})",
                "answer": f"The speaker sounds calm {q}.",
                "type": ("C", "CP", "DP")[q % 3],
                "origin": "template",
            }
            for q in range(n_qa)
        ],
    }


def write_source(
    out: Path,
    prefix: str,
    durations: list[float],
    split: str = "train",
    n_qa: int = 1,
    kind: str = "general",
    shard_bytes: int = 1 << 30,
) -> Path:
    """A shard set under `out` with one clip per duration, keys `{prefix}{i:04d}`; returns `out`."""
    samples = [
        (
            sample_meta(f"{prefix}{i:04d}", round(float(d), 6), split, n_qa, kind),
            wav_bytes(d, freq=200 + 7 * i),
            "wav",
        )
        for i, d in enumerate(durations)
    ]
    write_shards(samples, out, prefix="s", shard_bytes=shard_bytes)
    return out


def durations(n: int, seed: int = 0, low: float = 0.2, high: float = 1.2) -> list[float]:
    rng = np.random.default_rng(seed)
    return [round(float(x), 3) for x in rng.uniform(low, high, size=n)]
