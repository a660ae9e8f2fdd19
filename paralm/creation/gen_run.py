"""Generate for every pending clip concurrently, filter its pairs, and journal each clip as it finishes.

Each finished clip becomes one journal record: `{"key", "status": "ok", "pairs": [...], "filtered": {...}}`
or `{"key", "status": "failed", "reason", "detail"}`. Pairs in a record are final: filtered, with `origin`
and `generator` set, so writing the output later is a plain copy. Clips that failed for a run-level reason
(`RUN_LEVEL_FAILURES`: no connection, key refused, budget spent) are returned as unfinished instead of
journaled, so a later run tries them again.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from paralm.creation.gen_backends import RUN_LEVEL_FAILURES, Backend, Generation
from paralm.creation.gen_config import GenerateConfig
from paralm.creation.gen_inputs import GenInput
from paralm.creation.gen_journal import Journal
from paralm.creation.qa_filters import filter_pairs
from paralm.creation.qa_leakage import EvalSets
from paralm.eval.labels import infer_asks

ORIGINS = {"openai": "llm", "template": "template"}


def make_record(inp: GenInput, gen: Generation, cfg: GenerateConfig, eval_sets: EvalSets) -> dict:
    """The journal record of one clip: its final pairs and filter counts, or its failure."""
    base = {"key": inp.key, "requests": gen.requests, "invalid": dict(gen.invalid)}
    if gen.failure:
        return {**base, "status": "failed", "reason": gen.failure, "detail": gen.detail}
    leaks = eval_sets.leaks_text if len(eval_sets) else None
    res = filter_pairs(gen.pairs, cfg.filters, leaks)
    filtered = dict(gen.dropped)
    for reason, n in res.dropped.items():
        filtered[reason] = filtered.get(reason, 0) + n
    origin = ORIGINS[cfg.backend]
    pairs = [{"question": p["question"], "answer": p["answer"], "type": p["type"], "origin": origin,
              "asks": p.get("asks") or infer_asks(p["type"], p["question"]), "generator": dict(gen.generator)}
             for p in res.kept]
    return {**base, "status": "ok", "pairs": pairs, "filtered": filtered}


def _progress_printer(total: int, quiet: bool) -> Callable[[int], None]:
    step = max(1, total // 10)

    def show(done: int) -> None:
        if not quiet and (done % step == 0 or done == total):
            print(f"generate: {done}/{total} clips finished", file=sys.stderr, flush=True)

    return show


async def run_pending(pending: list[GenInput], backend: Backend, journal: Journal, cfg: GenerateConfig,
                      eval_sets: EvalSets, quiet: bool = False) -> dict[str, dict]:
    """Generate for `pending` clips (at most `cfg.concurrency` at once), journaling each finished one.

    Returns the unfinished clips' failure records (run-level failures), by key.
    """
    sem = asyncio.Semaphore(cfg.concurrency)
    unfinished: dict[str, dict] = {}
    done = 0
    show = _progress_printer(len(pending), quiet)

    async def one(inp: GenInput) -> None:
        nonlocal done
        async with sem:
            gen = await backend.generate(inp)
        record = make_record(inp, gen, cfg, eval_sets)
        if gen.failure in RUN_LEVEL_FAILURES:
            unfinished[inp.key] = record
        else:
            journal.append(record)
        done += 1
        show(done)

    try:
        await asyncio.gather(*(one(inp) for inp in pending))
    finally:
        await backend.aclose()
    return unfinished
