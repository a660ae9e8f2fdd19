"""`paralm data transcribe S --out S2 --model DIR`: Whisper transcripts with word timings.

The model (WhisperForConditionalGeneration + its processor) is read from a local folder and run
through transformers' ASR pipeline, batched, with `return_timestamps="word"` (word times come from
cross-attention alignment, so the folder's generation_config must list `alignment_heads`;
`--no-words` transcribes without them). Clips longer than 30 s are decoded in 30-s chunks.

Per sample: `transcript` <- the ASR text; a previous non-empty transcript is kept as
`transcript_source` (and previous `words` as `words_source`) unless those already exist, so the
original human transcript survives any number of reruns. `words` <- [{w, start, end}] in seconds,
clamped to the clip and made monotonic (starts never go back, end >= start).
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from paralm.creation.annotators.base import folder_version, resolve_device
from paralm.creation.stage import StageSample, add_stage_args, run_cli, run_stage

SAMPLE_RATE = 16000


@dataclass
class AsrConfig:
    """Whisper decoding options.

    Args:
        model: local folder with the Whisper model, tokenizer, feature-extractor and generation configs.
        words: write word timings (needs `alignment_heads` in the generation config).
        language: language token for multilingual models (e.g. "en"); None = model default / detection.
        max_new_tokens: cap on generated tokens per 30-s window.
        num_beams: beam size (1 = greedy).
        chunk_length_s: window length for clips longer than the model's 30-s context.
        device: auto | cpu | cuda | cuda:N (fp16 on GPU, fp32 on CPU).
    """

    model: str
    words: bool = True
    language: str | None = None
    max_new_tokens: int = 440
    num_beams: int = 1
    chunk_length_s: float = 30.0
    device: str = "auto"


def clean_words(chunks: list[dict], duration: float) -> list[dict]:
    """Pipeline word chunks -> [{w, start, end}]: blank words dropped, times clamped to [0, duration], monotonic."""
    words: list[dict] = []
    last_start = 0.0
    for chunk in chunks:
        text = str(chunk.get("text", "")).strip()
        start, end = chunk.get("timestamp") or (None, None)
        if not text:
            continue
        start = min(max(float(start if start is not None else last_start), last_start), duration)
        end = min(max(float(end if end is not None else duration), start), duration)
        words.append({"w": text, "start": round(start, 3), "end": round(end, 3)})
        last_start = start
    return words


class WhisperTranscriber:
    """Batched Whisper ASR from a local folder: `(list of (N,) 16-kHz arrays) -> [(text, words)]`."""

    def __init__(self, cfg: AsrConfig) -> None:
        import torch
        from transformers import AutoProcessor, WhisperForConditionalGeneration, pipeline

        folder = Path(cfg.model)
        if not folder.is_dir():
            raise FileNotFoundError(f"--model {folder} is not a folder")
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        model = WhisperForConditionalGeneration.from_pretrained(folder, local_files_only=True, dtype=dtype)
        if cfg.words and not getattr(model.generation_config, "alignment_heads", None):
            raise ValueError(f"{folder}/generation_config.json has no alignment_heads, so word timings cannot be "
                             "computed; add them or pass --no-words")
        processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
        tokenizer = processor.tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token  # batching pads decoder outputs
        self.pipe = pipeline("automatic-speech-recognition", model=model, tokenizer=tokenizer,
                             feature_extractor=processor.feature_extractor, device=torch.device(self.device))
        self.version = folder_version(folder)

    def __call__(self, audios: list[np.ndarray]) -> list[tuple[str, list[dict]]]:
        gen = {"max_new_tokens": self.cfg.max_new_tokens, "num_beams": self.cfg.num_beams}
        if self.cfg.language:
            gen["language"] = self.cfg.language
        outputs = self.pipe([np.asarray(a, dtype=np.float32) for a in audios], batch_size=len(audios),
                            return_timestamps="word" if self.cfg.words else False,
                            chunk_length_s=self.cfg.chunk_length_s, generate_kwargs=gen)
        results = []
        for audio, out in zip(audios, outputs, strict=True):
            words = clean_words(out.get("chunks") or [], len(audio) / SAMPLE_RATE) if self.cfg.words else []
            results.append((str(out["text"]).strip(), words))
        return results


def apply_transcript(meta: dict, text: str, words: list[dict] | None) -> None:
    """Write the ASR result into `meta`, keeping the first earlier transcript/words as `*_source`."""
    if meta.get("transcript", "").strip() and "transcript_source" not in meta:
        meta["transcript_source"] = meta["transcript"]
    if meta.get("words") and "words_source" not in meta:
        meta["words_source"] = meta["words"]
    meta["transcript"] = text
    meta.pop("words", None)
    if words is not None:
        meta["words"] = words


def make_transform(asr: WhisperTranscriber):
    def transform(batch: list[StageSample], counts: Counter) -> list[StageSample]:
        for sample, (text, words) in zip(batch, asr([s.audio for s in batch]), strict=True):
            apply_transcript(sample.meta, text, words if asr.cfg.words else None)
            counts["transcribed" if text else "empty_transcript"] += 1
            counts["words"] += len(words)
        return batch

    return transform


def transcribe(src, out, cfg: AsrConfig, batch_size: int = 8, shard_bytes: int | None = None, quiet: bool = False):
    """Library entry point of the command; returns the StageReport."""
    import transformers

    asr = WhisperTranscriber(cfg)
    params = {k: v for k, v in asdict(cfg).items() if k not in ("model", "device")}
    record = {"model": str(cfg.model), "version": asr.version, "transformers": transformers.__version__,
              "params": params, "device": asr.device, "fields": ["transcript", "words"] if cfg.words else ["transcript"]}
    kwargs = {"shard_bytes": shard_bytes} if shard_bytes else {}
    return run_stage(src, out, "transcribe", make_transform(asr), record=record, sample_rate=SAMPLE_RATE,
                     batch_size=batch_size, quiet=quiet, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="paralm data transcribe", description=__doc__.split("\n\n")[0])
    add_stage_args(p)
    p.set_defaults(batch_size=8)
    p.add_argument("--model", required=True, help="local Whisper folder (model, tokenizer, feature extractor)")
    p.add_argument("--no-words", dest="words", action="store_false", help="skip word timings")
    p.add_argument("--language", default=None, help="language for multilingual models, e.g. en")
    p.add_argument("--max-new-tokens", type=int, default=440, help="token cap per 30-s window")
    p.add_argument("--num-beams", type=int, default=1, help="beam size (1 = greedy)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    return p


def main(argv: list[str]) -> int:
    a = build_parser().parse_args(argv)
    cfg = AsrConfig(a.model, a.words, a.language, a.max_new_tokens, a.num_beams, device=a.device)
    return run_cli("paralm data transcribe", lambda: transcribe(a.src, a.out, cfg, batch_size=a.batch_size,
                                                                shard_bytes=a.shard_bytes))
