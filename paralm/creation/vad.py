"""`paralm data vad S --out S2 [--split]`: speech segments with silero-vad.

Each output sample gets `speech: [{start, end}]` (seconds). With `--split`, every speech segment
becomes a sample of its own instead, keyed `{key}_{i:03d}`, its audio cut from the original at the
original sample rate and re-encoded as FLAC. A window keeps the parent's corpus, split, speaker
fields and gold labels (utterance-level labels are the best available for its parts) and records
`window: {parent, start, end}`; words that fall inside it are kept (shifted to the window's time)
and become its transcript. The parent's QA pairs and annotator predictions describe the whole clip,
so they are not copied (counted in the report).

silero-vad ships its weights inside the package: the TorchScript model (`silero_vad.jit`) runs on
our CPU torch with neither onnxruntime nor torchaudio; this module never calls the package's audio
readers (they need torchaudio). The model is small and stateful (one call per 512-sample step), so
it runs on the CPU with one thread: more threads only add synchronisation (measured 16x slower with
2 threads on a busy 2-core machine). Importing the package sets torch's thread count to 1 for the
whole process; here the previous count is restored and one thread is used only while segmenting.
"""

from __future__ import annotations

import argparse
import io
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
import soundfile as sf

from paralm.creation.stage import StageSample, add_stage_args, run_cli, run_stage

SAMPLE_RATE = 16000
DROPPED_ON_SPLIT = ("qa", "speech", "words")


@dataclass
class VadConfig:
    """silero-vad parameters and window rules.

    Args:
        threshold: speech probability above which a 32-ms step counts as speech.
        min_speech_ms: shorter speech runs are discarded.
        min_silence_ms: silences shorter than this do not end a segment.
        speech_pad_ms: padding added to both ends of each segment.
        max_segment_s: longer segments are cut (at a silence when possible).
        split: write each segment as its own sample instead of annotating the clip.
        min_window_s: with split, segments shorter than this are dropped (counted).
    """

    threshold: float = 0.5
    min_speech_ms: int = 250
    min_silence_ms: int = 100
    speech_pad_ms: int = 30
    max_segment_s: float = 30.0
    split: bool = False
    min_window_s: float = 0.5


def load_silero():
    """(model, package version): the packaged TorchScript model, without changing torch's thread count."""
    import torch

    threads = torch.get_num_threads()
    try:
        import silero_vad
        from silero_vad import load_silero_vad
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError("paralm data vad needs the silero-vad package: pip install silero-vad") from err
    finally:
        torch.set_num_threads(threads)
    model = load_silero_vad(onnx=False)
    torch.set_num_threads(threads)
    return model, getattr(silero_vad, "__version__", "unknown")


def speech_segments(model, audio: np.ndarray, cfg: VadConfig) -> list[dict]:
    """(N,) float32 16-kHz audio -> [{start, end}] in seconds (3 decimals), in time order."""
    import torch
    from silero_vad import get_speech_timestamps

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            stamps = get_speech_timestamps(
                torch.from_numpy(np.ascontiguousarray(audio)), model, threshold=cfg.threshold,
                sampling_rate=SAMPLE_RATE, min_speech_duration_ms=cfg.min_speech_ms,
                min_silence_duration_ms=cfg.min_silence_ms, speech_pad_ms=cfg.speech_pad_ms,
                max_speech_duration_s=cfg.max_segment_s,
            )
    finally:
        torch.set_num_threads(threads)
    return [{"start": round(s["start"] / SAMPLE_RATE, 3), "end": round(s["end"] / SAMPLE_RATE, 3)} for s in stamps]


def window_meta(meta: dict, index: int, start: float, end: float) -> dict:
    """Metadata of the window [start, end) of the clip `meta` (key, duration are set by `derive`)."""
    out = {k: v for k, v in meta.items() if k not in DROPPED_ON_SPLIT}
    labels = meta.get("labels") or {}
    out["labels"] = {"gold": labels["gold"]} if "gold" in labels else {}
    words = [{"w": w["w"], "start": round(max(0.0, w["start"] - start), 3), "end": round(min(end, w["end"]) - start, 3)}
             for w in meta.get("words") or [] if w["start"] >= start and w["end"] <= end]
    if words:
        out["words"] = words
    out["transcript"] = " ".join(w["w"] for w in words)
    out["window"] = {"parent": meta["key"], "index": index, "start": start, "end": end}
    out["speech"] = [{"start": 0.0, "end": round(end - start, 3)}]
    return out


def split_sample(sample: StageSample, segments: list[dict], cfg: VadConfig, counts: Counter) -> list[StageSample]:
    """One new sample per segment, cut from the original audio at its own rate."""
    audio, rate = sf.read(io.BytesIO(sample.audio_bytes), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if sample.meta.get("qa"):
        counts["qa_dropped_on_split"] += len(sample.meta["qa"])
    out = []
    for seg in segments:
        if seg["end"] - seg["start"] < cfg.min_window_s:
            counts["windows_too_short"] += 1
            continue
        piece = audio[int(seg["start"] * rate) : int(seg["end"] * rate)]
        key = f"{sample.key}_{len(out):03d}"
        out.append(sample.derive(key, window_meta(sample.meta, len(out), seg["start"], seg["end"]), piece, rate))
    counts["windows"] += len(out)
    return out


def make_transform(model, cfg: VadConfig):
    def transform(batch: list[StageSample], counts: Counter) -> list[StageSample]:
        out: list[StageSample] = []
        for sample in batch:
            segments = speech_segments(model, sample.audio, cfg)
            counts["no_speech" if not segments else "with_speech"] += 1
            seconds = sum(s["end"] - s["start"] for s in segments)
            counts["speech_seconds"] = round(counts["speech_seconds"] + seconds, 3)
            if cfg.split:
                out += split_sample(sample, segments, cfg, counts)
            else:
                sample.meta["speech"] = segments
                out.append(sample)
        return out

    return transform


def vad(src, out, cfg: VadConfig | None = None, batch_size: int = 16, shard_bytes: int | None = None,
        quiet: bool = False):
    """Library entry point of the command; returns the StageReport."""
    cfg = cfg or VadConfig()
    model, version = load_silero()
    record = {"tool": "silero-vad", "version": version, "model": "silero_vad.jit", "params": asdict(cfg),
              "fields": ["window", "speech"] if cfg.split else ["speech"]}
    kwargs = {"shard_bytes": shard_bytes} if shard_bytes else {}
    return run_stage(src, out, "vad", make_transform(model, cfg), record=record, sample_rate=SAMPLE_RATE,
                     batch_size=batch_size, quiet=quiet, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="paralm data vad", description=__doc__.split("\n\n")[0])
    add_stage_args(p)
    d = VadConfig()
    p.add_argument("--threshold", type=float, default=d.threshold, help="speech probability threshold")
    p.add_argument("--min-speech-ms", type=int, default=d.min_speech_ms, help="drop shorter speech runs")
    p.add_argument("--min-silence-ms", type=int, default=d.min_silence_ms, help="shorter silences don't split")
    p.add_argument("--speech-pad-ms", type=int, default=d.speech_pad_ms, help="padding around each segment")
    p.add_argument("--max-segment-s", type=float, default=d.max_segment_s, help="cut longer segments")
    p.add_argument("--split", action="store_true", help="write each speech segment as its own sample")
    p.add_argument("--min-window-s", type=float, default=d.min_window_s, help="with --split: drop shorter windows")
    return p


def main(argv: list[str]) -> int:
    a = build_parser().parse_args(argv)
    cfg = VadConfig(a.threshold, a.min_speech_ms, a.min_silence_ms, a.speech_pad_ms, a.max_segment_s, a.split,
                    a.min_window_s)
    return run_cli("paralm data vad", lambda: vad(a.src, a.out, cfg, batch_size=a.batch_size,
                                                  shard_bytes=a.shard_bytes))
