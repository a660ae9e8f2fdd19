"""`paralm ask MODEL AUDIO [AUDIO ...] [QUESTION]`: what a trained model says about your own recordings.

    paralm ask runs/export clip.wav "How does the speaker feel?"
    paralm ask runs/export a.wav b.flac --question "What is said?" --json
    paralm ask runs/run1/checkpoints/last.ckpt clip.wav --config runs/run1/config.yaml

MODEL is an export folder (`paralm export`) or a verified checkpoint with its training config (default:
the run folder's config.yaml). Each file is decoded and resampled as the data path does (any rate or
channel count soundfile reads), the prompt is built exactly as in training (mode, instruction, system
line, metadata format: recorded with the model; a model without that record is refused), and greedy
answers are printed, one per file; several files are answered as one batch. An explicit-mode model
reads its metadata block from --metadata "emotion=angry,arousal=0.8"; nothing is guessed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from paralm.fault.exits import UserError

DEFAULT_QUESTION = "What does the speaker say, and how do they sound?"
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".aif")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="paralm ask", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("model", help="export folder of `paralm export`, or a .ckpt of `paralm fit`")
    p.add_argument("inputs", nargs="+", metavar="AUDIO [QUESTION]",
                   help="audio files; a last argument that is not a file is the question")
    p.add_argument("--question", "-q", default=None, help=f"the question (default: {DEFAULT_QUESTION!r})")
    p.add_argument("--metadata", default=None,
                   help='explicit-mode labels, e.g. "emotion=angry,arousal=0.8,valence=0.3" (explicit models only)')
    p.add_argument("--config", action="append", default=None,
                   help="training config file(s) of a checkpoint (default: its run folder's config.yaml)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="longest answer in tokens")
    p.add_argument("--json", action="store_true", help="print answer, prompt and timing as JSON")
    return p


def split_inputs(inputs: list[str], question: str | None) -> tuple[list[Path], str]:
    """Audio files and the question: the last positional is the question when it is not a file."""
    files = list(inputs)
    if question is None and len(files) > 1 and not Path(files[-1]).exists() \
            and not files[-1].lower().endswith(AUDIO_SUFFIXES):
        question = files.pop()
    for name in files:
        if not Path(name).is_file():
            raise UserError(f"{name}: no such audio file")
    return [Path(f) for f in files], (question or DEFAULT_QUESTION)


def read_clips(files: list[Path], sample_rate: int) -> list:
    from paralm.serve.audio_input import AudioRefused, decode_clip

    clips = []
    for file in files:
        try:
            clips.append(decode_clip(file.read_bytes(), sample_rate))
        except AudioRefused as err:
            raise UserError(f"{file}: cannot use this audio ({err})") from None
    return clips


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.max_new_tokens < 1:
        raise UserError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    files, question = split_inputs(args.inputs, args.question)
    from paralm.serve.metadata import parse_metadata_text, sample_meta
    from paralm.serve.model_source import load_answering_model, training_prompt

    try:
        labels = parse_metadata_text(args.metadata) if args.metadata else None
    except ValueError as err:
        raise UserError(f"--metadata: {err}") from None
    start = time.perf_counter()
    meta = sample_meta(labels, training_prompt(args.model, args.config), args.model)  # refused before loading
    loaded = load_answering_model(args.model, args.config)
    loaded_at = time.perf_counter()
    clips = read_clips(files, loaded.sample_rate)
    decoded_at = time.perf_counter()
    from paralm.predict import answer

    answers = answer(loaded.model, [(clip, question, meta) for clip in clips], prompt=loaded.prompt,
                     max_new_tokens=args.max_new_tokens)
    timing = {"load_s": loaded_at - start, "decode_s": decoded_at - loaded_at,
              "generate_s": time.perf_counter() - decoded_at}
    print_answers(args, loaded, files, question, meta, answers, timing, clips)
    return 0


def print_answers(args, loaded, files, question, meta, answers, timing, clips) -> None:
    if not args.json:
        for file, text in zip(files, answers, strict=True):
            print(text if len(files) == 1 else f"{file}\t{text}")
        return
    from paralm.data.prompts import build_messages, render_prompt

    prompt = render_prompt(loaded.model.tokenizer, build_messages(
        question, meta, loaded.prompt, loaded.model.audio_token_spec().placeholder_token))
    rows = [{"audio": str(file), "seconds": round(len(clip) / loaded.sample_rate, 3), "question": question,
             "answer": text, "prompt": prompt, "prompt_settings": loaded.prompt.describe()}
            for file, text, clip in zip(files, answers, clips, strict=True)]
    json.dump({"model": str(args.model), "answers": rows, "timing": {k: round(v, 4) for k, v in timing.items()}},
              sys.stdout, indent=2)
    print()
