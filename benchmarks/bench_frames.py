"""(a) Useful encoder frames: real-length duration-bucketed batches vs padding every clip to 30 s.

Pure arithmetic on the project's own planner and `AudioTokenSpec`: for each batch the encoder computes
(items x frames of the longest clip) frames, of which the clips' own frames are useful. Naive
pipelines (Whisper-style feature extraction) pad every clip to 30 s, so each clip costs 1500 frames.
"""

from __future__ import annotations

import numpy as np
from bench_common import NAIVE_SECONDS, SAMPLE_RATE, Scale, duration_mix, tiny_config, tokenizer_and_spec

from paralm.data.plan import BatchingConfig, Pool, TrainPlanner


def _efficiency(batches: list[list[int]], frames: np.ndarray) -> float:
    useful = sum(int(frames[b].sum()) for b in batches)
    computed = sum(len(b) * int(frames[b].max()) for b in batches)
    return useful / computed


def run(scale: Scale, seed: int = 0) -> dict:
    durations = duration_mix(scale.plan_clips, seed)
    _, spec = tokenizer_and_spec(tiny_config())
    frames = np.array([spec.encoder_frames(int(round(d * SAMPLE_RATE))) for d in durations])
    naive_frames = spec.encoder_frames(int(NAIVE_SECONDS * SAMPLE_RATE))
    pool = [Pool("mix", "general", 1.0, durations)]
    plans = {}
    for name, window in (("bucketed", 64), ("unbucketed", 1)):
        planner = TrainPlanner(pool, BatchingConfig(batch_size=8, window_batches=window), seed=seed)
        plans[name] = [[item.item for item in batch] for batch in planner.epoch_plan(0).batches]
    bucketed = _efficiency(plans["bucketed"], frames)
    unbucketed = _efficiency(plans["unbucketed"], frames)
    naive = float(frames.sum()) / (len(frames) * naive_frames)
    return {
        "clips": len(durations),
        "median_s": float(np.median(durations)),
        "mean_s": float(durations.mean()),
        "useful_bucketed": bucketed,
        "useful_real_length_unbucketed": unbucketed,
        "useful_naive_30s": naive,
        "ratio": bucketed / naive,
        "rows": [
            ("useful encoder frames, bucketed real length (batch 8, window 64)", f"{bucketed:.3f}"),
            ("useful encoder frames, real length without bucketing", f"{unbucketed:.3f}"),
            ("useful encoder frames, naive pad to 30 s", f"{naive:.3f}"),
            ("ratio bucketed / naive (target >= 4x, bucketed >= 0.85)", f"{bucketed / naive:.2f}x"),
        ],
        "pass": bucketed >= 0.85 and bucketed / naive >= 4.0,
    }
