"""The optional LLM judge of an ablation: the `paralm judge` library function run on a result folder's predictions.

The endpoint and model come from the ablation file's `judge.client`; the key only from the environment
variable it names, so it never reaches a config, a log or W&B. Judge scores complement the deterministic
metrics; they never replace them in the headline.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from paralm.judge.commands import judge_file
from paralm.judge.judge import JudgeSettings as SamplingSettings
from paralm.runs.ablate.config import JudgeSettings


def judge_predictions(settings: JudgeSettings, predictions: Path, out: Path, seed: int) -> dict:
    """Judge one predictions file into `out` (cached in out/judge_cache.sqlite unless the client names a
    cache, resumable); `seed` is the judge's sampling seed. Returns the judge summary."""
    client = replace(settings.client, cache_path=settings.client.cache_path or str(Path(out) / "judge_cache.sqlite"))
    return judge_file(predictions, out, client, settings=SamplingSettings(seed=seed), show_progress=True)
