"""The optional LLM judge of an ablation: the `paralm judge` command run on a result folder's predictions.

The endpoint and model come from the ablation file; the key only from the environment variable it
names, so it never reaches a config, a log or W&B. Judge scores complement the deterministic metrics;
they never replace them in the headline.
"""

from __future__ import annotations

from pathlib import Path

from paralm.judge.commands import build_parser, run_judge
from paralm.runs.ablate_config import JudgeSettings


def judge_predictions(settings: JudgeSettings, predictions: Path, out: Path, seed: int) -> dict:
    """Judge one predictions file into `out` (cached, resumable); returns the judge summary."""
    args = build_parser().parse_args([
        "--predictions", str(predictions), "--out", str(out), "--base-url", settings.base_url,
        "--model", settings.model, "--api-key-env", settings.api_key_env, "--seed", str(seed),
    ])
    return run_judge(args)
