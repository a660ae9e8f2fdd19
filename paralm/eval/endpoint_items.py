"""Test items of packed shards as OpenAI audio chat requests, and their answers as prediction rows.

Why float WAV: the audio is read and resampled by the data path (SampleReader, as `paralm predict` reads
it) and sent as 32-bit float WAV at that rate, which decodes back to the very same samples; an endpoint
serving a paralm model therefore hears exactly what `paralm predict` fed the model. The question goes as
a text part; with a metadata source the explicit metadata block (paralm.data.prompts) precedes it.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass

import numpy as np

from paralm.api.chat_types import ChatRequest
from paralm.data.prompts import metadata_block
from paralm.data.reader import SampleReader, SkipSample
from paralm.data.sources import SourceSpec, load_source
from paralm.formats.predictions import PredictionRow


@dataclass
class EndpointItem:
    """One QA item of a test clip: the sample's key and metadata, which question, its audio as WAV bytes."""

    key: str
    meta: dict
    qa_index: int
    wav: bytes

    @property
    def qa(self) -> dict:
        return self.meta["qa"][self.qa_index]


def read_items(shards: str, split: str, sample_rate: int, max_duration: float | None) -> tuple[list[EndpointItem], dict]:
    """Every QA item of `split`, and skipped items counted by reason (a clip that cannot be read is a skip)."""
    source = load_source(SourceSpec(name="eval", path=str(shards), split=split))
    reader = SampleReader(source.root, sample_rate=sample_rate, max_duration=max_duration)
    items, skipped, wavs = [], {}, {}
    for i in range(len(source.items)):
        row, qa_index = source.item(i)
        try:
            sample = reader.read(row)
        except SkipSample as err:
            skipped[err.reason] = skipped.get(err.reason, 0) + 1
            continue
        if sample.key not in wavs:
            wavs[sample.key] = float_wav(sample.audio, sample.sample_rate)
        items.append(EndpointItem(sample.key, sample.meta, qa_index, wavs[sample.key]))
    return items, skipped


def float_wav(audio: np.ndarray, sample_rate: int) -> bytes:
    """Mono 32-bit float WAV, byte-identical for identical audio (libsndfile's float WAVs carry a PEAK chunk
    with a timestamp, which would give every run new request bytes and defeat the cache)."""
    data = np.ascontiguousarray(audio, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, sample_rate, 4 * sample_rate, 4, 32)  # IEEE float, mono, 32 bit
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def item_request(item: EndpointItem, metadata: str, max_tokens: int) -> ChatRequest:
    """The chat request of one item: question text (metadata block first when asked) + one audio part."""
    text = str(item.qa["question"]).strip()
    if metadata != "none":
        text = f"{metadata_block(item.meta, metadata)}\n{text}"
    audio = {"type": "input_audio", "input_audio": {"data": base64.b64encode(item.wav).decode(), "format": "wav"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": text}, audio]}]
    return ChatRequest(messages=messages, temperature=0.0, max_tokens=max_tokens, tag=f"{item.key}#{item.qa_index}")


def prediction_row(item: EndpointItem, answer: str, system: str) -> PredictionRow:
    """The row `paralm predict` writes for the same item (paralm.eval.generation.rows_from_batch)."""
    gold = (item.meta.get("labels") or {}).get("gold") or {}
    qa = item.qa
    return PredictionRow(
        key=item.key, question=str(qa["question"]), type=str(qa.get("type", "")), reference=str(qa["answer"]),
        answer=answer, emotion=gold.get("emotion"), gender=gold.get("gender"),
        neutral_text=item.meta.get("neutral_text"), asks=qa.get("asks"), system=system,
        extra={"qa_index": item.qa_index, "origin": qa.get("origin", "")},
    )
