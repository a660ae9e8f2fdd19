"""`paralm data condense S --out S2`: cut clips into labelled windows and keep those whose labels agree.

Two passes over the input. The first reads only metadata and runs the pure core
(`paralm.creation.condense_core.condense_clips`: windows, label, consistency, length, occurrence), because
the occurrence filter needs every window's label before any can be written. The second cuts each kept
window's audio (centre plus context, at the clip's own sample rate, re-encoded as FLAC) into a new sample
`{clip}_w{i:03d}` whose transcript and words are those of the cut. Each window sample carries
`window = {parent, index, centre, cut}` (seconds in the parent clip) and only the label that kept it, under
`labels.pred[annotator]` with `scope: window|clip` (or `labels.gold` when labelling from gold). Parent QA pairs,
speech segments and stored window predictions describe the whole clip and are not copied.

The report (`condense_report.json` and a printed table) gives the windows left after each stage, the
dropped windows by reason and the kept windows per label.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import soundfile as sf

from paralm.creation.condense_core import STAGES, CondenseConfig, CondenseResult, Window, condense_clips
from paralm.creation.stage import StageSample, add_stage_args, read_samples, run_stage
from paralm.data.shards import DEFAULT_SHARD_BYTES
from paralm.data.skips import SkipCounter
from paralm.fault.exits import EXIT_USER_ERROR

VERSION = "condense/1"
# Per-clip fields that describe the whole clip and would be wrong on a window.
CLIP_ONLY_FIELDS = ("speech", "windows", "qa", "words", "labels", "transcript", "duration")


def read_clip_metas(src: str | Path) -> list[dict]:
    """Metadata of every readable input clip (audio is not decoded in this pass; skips are counted by the
    second pass, which reads the same samples)."""
    return [s.meta for s in read_samples(src, None, SkipCounter())]


def window_meta(parent: dict, w: Window, cfg: CondenseConfig) -> dict:
    """The metadata of one window sample, built from its parent's."""
    meta = {k: v for k, v in parent.items() if k not in CLIP_ONLY_FIELDS}
    meta.update(key=w.key, transcript=w.transcript, duration=round(w.cut[1] - w.cut[0], 6),
                window={"parent": w.parent, "index": w.index, "centre": list(w.centre), "cut": list(w.cut)})
    if w.words is not None:
        meta["words"] = w.words
    gold = (parent.get("labels") or {}).get("gold")
    if cfg.annotator == "gold":
        meta["labels"] = {"gold": dict(w.label or {}, scope=w.label_scope)}
    else:
        meta["labels"] = {"pred": {cfg.annotator: dict(w.label or {}, scope=w.label_scope)}}
        if gold:
            meta["labels"]["gold"] = gold
    return meta


def _native_audio(data: bytes) -> tuple[np.ndarray, int]:
    """Encoded bytes -> (float32 mono (N,), native sample rate): windows keep the clip's own rate."""
    audio, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return audio.mean(axis=1), int(sr)


def make_transform(kept: dict[str, list[Window]], cfg: CondenseConfig):
    """A stage transform that turns each clip into its kept window samples."""

    def transform(batch: list[StageSample], counts: Counter) -> list[StageSample]:
        out = []
        for s in batch:
            windows = kept.get(s.key, [])
            if not windows:
                continue
            try:
                audio, sr = _native_audio(s.audio_bytes)
            except (sf.LibsndfileError, RuntimeError) as err:
                counts["skipped:corrupt_audio"] += 1
                print(f"condense: skip {s.key}: undecodable audio ({err})")
                continue
            for w in windows:
                a, b = int(round(w.cut[0] * sr)), int(round(w.cut[1] * sr))
                out.append(s.derive(w.key, window_meta(s.meta, w, cfg), audio[a:b], sr))
                counts["windows_written"] += 1
        return out

    return transform


def report_dict(res: CondenseResult, cfg: CondenseConfig, n_clips: int) -> dict:
    return {"version": VERSION, "config": asdict(cfg), "clips": n_clips,
            "stages": {name: res.stage_counts.get(name, 0) for name in STAGES},
            "dropped": res.reasons(), "labels": res.label_counts()}


def format_report(rep: dict) -> str:
    """A plain table: windows left after each stage, then drops by reason and kept windows by label."""
    lines = [f"condense: {rep['clips']} clips", f"  {'stage':<14}{'windows':>10}"]
    lines += [f"  {name:<14}{n:>10}" for name, n in rep["stages"].items()]
    lines += ["  dropped by reason:"] + [f"    {r:<22}{n:>6}" for r, n in rep["dropped"].items()]
    lines += ["  kept by label:"] + [f"    {lab:<22}{n:>6}" for lab, n in rep["labels"].items()]
    return "\n".join(lines)


def condense(src: str | Path, out: str | Path, cfg: CondenseConfig, *, batch_size: int = 16,
             shard_bytes: int = DEFAULT_SHARD_BYTES, quiet: bool = False) -> dict:
    """Condense shard set `src` into window samples in `out`; returns the report dict."""
    metas = read_clip_metas(src)
    res = condense_clips(metas, cfg)
    kept: dict[str, list[Window]] = {}
    for w in res.kept:
        kept.setdefault(w.parent, []).append(w)
    record = {"version": VERSION, **asdict(cfg)}
    run_stage(src, out, "condense", make_transform(kept, cfg), record=record, sample_rate=None,
              batch_size=batch_size, shard_bytes=shard_bytes, quiet=True, show_progress=not quiet)
    rep = report_dict(res, cfg, len(metas))
    (Path(out) / "condense_report.json").write_text(json.dumps(rep, indent=2) + "\n")
    if not quiet:
        print(format_report(rep))
    return rep


def build_parser() -> argparse.ArgumentParser:
    p = add_stage_args(argparse.ArgumentParser(prog="paralm data condense", description=__doc__.splitlines()[0]))
    d = CondenseConfig()
    p.add_argument("--window", type=float, default=d.window, help="labelled centre length t (s)")
    p.add_argument("--context", type=float, default=d.context, help="context dt on each side of the centre (s)")
    p.add_argument("--annotator", default=d.annotator, help="labels.pred annotator id, or 'gold'")
    p.add_argument("--dimensions", default=d.dimensions, metavar="ID",
                   help="take arousal/valence/dominance from this annotator (e.g. a dimensional regressor)")
    p.add_argument("--valence-pos", type=float, default=d.valence_pos, help="positive emotions need valence >= this")
    p.add_argument("--valence-neg", type=float, default=d.valence_neg, help="negative emotions need valence <= this")
    p.add_argument("--neutral-rule", default=d.neutral_rule, choices=["any", "between"],
                   help="neutral/surprised: pass at any valence, or only between the two thresholds")
    p.add_argument("--min-occurrence", type=int, default=d.min_occurrence, help="drop labels with fewer windows")
    p.add_argument("--min-words", type=int, default=d.min_words, help="drop centres with fewer words (needs words)")
    p.add_argument("--min-centre", type=float, default=d.min_centre, help="drop centres shorter than this (s)")
    return p


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = CondenseConfig(window=args.window, context=args.context, annotator=args.annotator,
                             dimensions=args.dimensions,
                             valence_pos=args.valence_pos, valence_neg=args.valence_neg,
                             neutral_rule=args.neutral_rule, min_occurrence=args.min_occurrence,
                             min_words=args.min_words, min_centre=args.min_centre)
    except ValueError as err:
        parser.error(str(err))
    try:
        condense(args.src, args.out, cfg, batch_size=args.batch_size, shard_bytes=args.shard_bytes)
    except (FileExistsError, FileNotFoundError) as err:
        print(f"paralm data condense: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0
