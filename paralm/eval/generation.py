"""Turn generation batches into prediction rows (the predictions JSONL format of paralm.formats.predictions).

Used by the JudgeEvalCallback during training, by `paralm predict` and by the ablation runner. Works with
anything that has a `generate(batch) -> list[str]` method (the LightningModule), so it never imports the
model. `gather_rows` is the one cross-rank gather both the callback and `paralm predict` use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from paralm.data.batch import Batch
from paralm.formats.predictions import PredictionRow


def rows_from_batch(batch: Batch, answers: list[str], system: str | None = None, seed: int | None = None,
                    row: str | None = None) -> list[PredictionRow]:
    """One PredictionRow per real (non-padding) item of a generation batch."""
    out = []
    for i, answer in enumerate(answers):
        meta = batch.meta[i] if i < len(batch.meta) else {}
        if meta.get("is_pad"):
            continue
        gold = (meta.get("labels") or {}).get("gold") or {}
        out.append(PredictionRow(
            key=batch.keys[i], question=batch.questions[i], type=batch.question_types[i],
            reference=batch.references[i], answer=answer, emotion=gold.get("emotion"),
            gender=gold.get("gender"), neutral_text=meta.get("neutral_text"), asks=meta.get("asks"),
            system=system, row=row, seed=seed,
            extra={"qa_index": meta.get("qa_index"), "origin": meta.get("origin", "")},
        ))
    return out


def generate_rows(generate: Callable[[Batch], list[str]], batches: Iterable[Batch], *,
                  to_device: Callable[[Batch], Batch] | None = None, max_samples: int | None = None,
                  system: str | None = None, seed: int | None = None, row: str | None = None,
                  progress: Callable[[int], None] | None = None) -> list[PredictionRow]:
    """Generate answers for every batch (optionally capped at max_samples rows) and collect the rows."""
    rows: list[PredictionRow] = []
    for batch in batches:
        if max_samples is not None and len(rows) >= max_samples:
            break
        if to_device is not None:
            batch = to_device(batch)
        rows.extend(rows_from_batch(batch, generate(batch), system=system, seed=seed, row=row))
        if progress is not None:
            progress(len(rows))
    return rows[:max_samples] if max_samples is not None else rows


def _row_order(row: PredictionRow) -> tuple:
    """Sort key of written predictions: (key, qa_index, question), the same whatever the rank count."""
    return (row.key, row.extra.get("qa_index") or 0, row.question)


def gather_rows(rows: list[PredictionRow]) -> list[PredictionRow]:
    """Every rank's rows on every rank, in `_row_order` (each rank generated its own share of the split).

    Outside an initialised multi-process group this is the rows themselves, sorted (a new list)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        parts: list = [None] * dist.get_world_size()
        dist.all_gather_object(parts, [r.to_dict() for r in rows])
        rows = [PredictionRow.from_dict(d) for part in parts for d in part]
    return sorted(rows, key=_row_order)


def flatten_metrics(prefix: str, tree: dict) -> dict[str, float]:
    """Numeric leaves of a nested summary as `prefix/a/b` keys (for logger.log_metrics)."""
    flat: dict[str, float] = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            flat[name] = float(value)
        elif isinstance(value, dict):
            flat.update(flatten_metrics(name, value))
    return flat
