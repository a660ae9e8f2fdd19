"""Where a loader's time goes, per clip and stage, in one process: the table in docs/performance.md (b).

    python benchmarks/loader_breakdown.py            # 640 clips, FLAC and WAV shards, best of 3 passes

Both loaders of benchmark (b) (bucketed real length; every clip padded to 30 s) read the same shards in
the main process (no workers, so no transfer costs), and each stage's functions are wrapped with a
timer: tar read, json + schema, decode, prompt + tokenise, log-mel, padding. "other" is what the
wrappers do not cover (plan bookkeeping, skip counting, Batch assembly). The figures explain the ratio
of (b): only log-mel grows with the padded length.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

import torch  # noqa: E402
from bench_common import duration_mix, source, tiny_config, tokenizer_and_spec, write_mix_shards  # noqa: E402
from bench_loader import PadTo30Collator, plan_loader  # noqa: E402

import paralm.data.collate as collate_module  # noqa: E402
import paralm.data.reader as reader_module  # noqa: E402

STAGES = (  # (module, attribute, label)
    (reader_module, "read_raw", "tar read"),
    (reader_module, "parse_meta", "json + schema"),
    (reader_module, "decode_audio", "decode"),
    (collate_module.Collator, "_tokenize", "prompt + tokenise"),
    (collate_module, "log_mel", "log-mel"),
    (collate_module, "_audio_fields", "pad features"),
    (collate_module.Collator, "_pad_text", "pad text"),
)


def _timed(fn: Callable, label: str, totals: Counter) -> Callable:
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[label] += time.perf_counter() - start

    return wrapper


def breakdown(shards: Path, collator, window: int, passes: int) -> tuple[float, dict[str, float]]:
    """Best pass: (ms per clip, {stage: ms per clip})."""
    totals: Counter = Counter()
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in STAGES]
    for owner, name, label in STAGES:
        setattr(owner, name, _timed(getattr(owner, name), label, totals))
    try:
        loader = plan_loader([source(shards)], collator, window=window, workers=0, seed=0)
        dataset = loader.dataset_fn(loader.plan_fn(0))
        best = None
        for _ in range(passes):
            totals.clear()
            start, n = time.perf_counter(), 0
            for i in range(len(dataset)):
                n += len(dataset[i][0])
            seconds = time.perf_counter() - start
            if best is None or seconds < best[0]:
                best = (seconds, dict(totals), n)
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)
    seconds, parts, n = best
    per_clip = {k: v / n * 1e3 for k, v in parts.items()}
    per_clip["other"] = (seconds - sum(parts.values())) / n * 1e3
    return seconds / n * 1e3, per_clip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=640)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tok, spec = tokenizer_and_spec(tiny_config())
    durations = duration_mix(args.clips, args.seed + 1)
    print(f"{args.clips} clips, mean {durations.mean():.2f} s; ms per clip, best of {args.passes} passes")
    labels = [label for *_, label in STAGES] + ["other"]
    print("| shards, loader | total | " + " | ".join(labels) + " |")
    print("|---" * (len(labels) + 2) + "|")
    with tempfile.TemporaryDirectory(prefix="paralm-breakdown-") as tmp:
        for fmt in ("flac", "wav"):
            shards = write_mix_shards(Path(tmp) / fmt, durations, audio_format=fmt)
            for name, collator, window in (("real length", collate_module.Collator(tok, spec), 64),
                                           ("padded to 30 s", PadTo30Collator(tok, spec), 1)):
                total, parts = breakdown(shards, collator, window, args.passes)
                cells = " | ".join(f"{parts.get(label, 0.0):.2f}" for label in labels)
                print(f"| {fmt}, {name} | {total:.2f} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
