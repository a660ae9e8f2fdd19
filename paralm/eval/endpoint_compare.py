"""Two systems on the same items: per-item differences with paired bootstrap CIs, and the optional judge
pass of `paralm eval` (the same `paralm judge` code and output folder layout)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from paralm.eval.scorers import label_outcomes, token_f1
from paralm.fault.exits import UserError
from paralm.formats.predictions import PredictionRow, read_predictions
from paralm.stats.bootstrap import mean_ci


def _paired(values: dict[str, float], other: dict[str, float], seed: int) -> dict:
    """Mean of (this - other) over the items both have, with a bootstrap CI resampling item pairs."""
    common = sorted(set(values) & set(other))
    if not common:
        return {"n": 0, "this": None, "other": None, "difference": None}
    a = np.array([values[i] for i in common])
    b = np.array([other[i] for i in common])
    return {"n": len(common), "this": float(a.mean()), "other": float(b.mean()),
            "difference": mean_ci(a - b, seed=seed).as_dict()}


def compare_predictions(rows: list[PredictionRow], other_path: str | Path, seed: int = 0) -> dict:
    """Token F1 (all rows) and label correctness (DP rows with a gold label), item by item."""
    try:
        other = read_predictions(other_path)
    except (OSError, ValueError) as err:
        raise UserError(f"--compare {other_path}: {err}") from None
    f1 = {r.item_id: token_f1(r.answer, r.reference) for r in rows}
    f1_other = {r.item_id: token_f1(r.answer, r.reference) for r in other}
    labels = {o.item_id: float(o.correct) for o in label_outcomes(rows)}
    labels_other = {o.item_id: float(o.correct) for o in label_outcomes(other)}
    answers = {r.item_id: r.answer for r in rows}
    return {"other": str(other_path), "items_here": len(rows), "items_other": len(other),
            "token_f1": _paired(f1, f1_other, seed), "label_correct": _paired(labels, labels_other, seed),
            "same_answer": sum(r.answer == answers.get(r.item_id) for r in other)}


def judge_rows(args: argparse.Namespace, rows: list[PredictionRow], out: Path) -> dict:
    """`paralm judge` on the answers (reference_match rubric) into OUT/judge; returns its summary."""
    from paralm.api.client import ChatClient, ClientConfig
    from paralm.cli_flags import client_kwargs, judge_base_url
    from paralm.judge.commands import judge_to_dir
    from paralm.judge.judge import Judge, JudgeSettings

    base_url = judge_base_url(args.judge_base_url)
    if base_url is None:
        raise UserError("--judge-model needs an endpoint: --judge-base-url, $PARALM_JUDGE_BASE_URL or $OPENAI_BASE_URL")
    config = ClientConfig(base_url=base_url, model=args.judge_model, api_key_env=args.judge_api_key_env,
                          concurrency=args.concurrency, cache_path=str(out / "judge_cache.sqlite"), **client_kwargs(args))
    client = ChatClient(config)
    try:
        return judge_to_dir(rows, Judge(client, "reference_match", JudgeSettings()), out)
    finally:
        client.close_cache()
