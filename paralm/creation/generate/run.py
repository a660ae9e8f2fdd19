"""Generate for every pending clip concurrently, filter its pairs, and journal each clip as it finishes.

Each finished clip becomes one journal record: `{"key", "status": "ok", "pairs": [...], "filtered": {...}}`
or `{"key", "status": "failed", "reason", "detail"}`. Pairs in a record are final: filtered, with `origin`
and `generator` set, so writing the output later is a plain copy. Clips that failed for a run-level reason
(`RUN_LEVEL_FAILURES`: no connection, key refused, budget spent) are returned as unfinished instead of
journaled, so a later run tries them again.
"""

from __future__ import annotations

import asyncio

from paralm.creation.generate.backends import RUN_LEVEL_FAILURES, Backend, Generation
from paralm.creation.generate.config import GenerateConfig
from paralm.creation.generate.filters import filter_pairs
from paralm.creation.generate.inputs import GenInput
from paralm.creation.generate.journal import Journal
from paralm.creation.generate.leakage import EvalSets
from paralm.eval.labels import infer_asks
from paralm.progress import progress_bar

ORIGINS = {"openai": "llm", "template": "template"}


def make_record(inp: GenInput, gen: Generation, cfg: GenerateConfig, eval_sets: EvalSets,
                first_attempt: int = 0) -> dict:
    """The journal record of one clip: its final pairs and filter counts, or its failure.

    `next_attempt` is where a retry of this clip starts (after every attempt made so far)."""
    base = {"key": inp.key, "requests": gen.requests, "invalid": dict(gen.invalid),
            "next_attempt": first_attempt + gen.requests}
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


def first_attempt(record: dict | None) -> int:
    """Where generation for a clip starts: 0, or after the attempts of its journaled (failed) record."""
    if record is None:
        return 0
    return int(record.get("next_attempt", record.get("requests", 0)))


async def run_pending(pending: list[GenInput], backend: Backend, journal: Journal, cfg: GenerateConfig,
                      eval_sets: EvalSets, quiet: bool = False) -> dict[str, dict]:
    """Generate for `pending` clips (at most the client's `concurrency` at once; the template backend never
    waits, so one at a time), journaling each finished one.

    A clip with a journaled record (a failed one being retried) continues its attempts after that
    record's. Progress (clips done / total, rate, time left) goes to stderr unless `quiet`.
    Returns the unfinished clips' failure records (run-level failures), by key.
    """
    sem = asyncio.Semaphore(cfg.client.concurrency if cfg.client is not None else 1)
    unfinished: dict[str, dict] = {}
    bar = progress_bar(len(pending), "generate", unit="clips", disable=quiet or not pending)

    async def one(inp: GenInput) -> None:
        start = first_attempt(journal.records.get(inp.key))
        async with sem:
            gen = await backend.generate(inp, start)
        record = make_record(inp, gen, cfg, eval_sets, start)
        if gen.failure in RUN_LEVEL_FAILURES:
            unfinished[inp.key] = record
        else:
            journal.append(record)
        if bar is not None:
            bar.update(1)

    try:
        await asyncio.gather(*(one(inp) for inp in pending))
    finally:
        if bar is not None:
            bar.close()
        await backend.aclose()
    return unfinished
