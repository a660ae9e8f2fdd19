"""Read a packing manifest (JSONL or CSV) into metadata dicts with an `audio` path each.

JSONL: one object per line, already in the shard layout (see paralm.data.schema) plus `audio`, the
audio file path relative to the audio root. `duration` is measured when packing and need not be given.

CSV: one row per clip, flat columns mapped onto the layout:
    audio, key, transcript, corpus, split, source_kind      -> the same top-level fields
    gold_emotion, gold_arousal, gold_valence,
    gold_dominance, gold_gender                              -> labels.gold.<field>
    any dotted column, e.g. labels.pred.ser1.emotion         -> that nested path
    question, answer, qa_type, qa_origin (default human)     -> one entry of qa
    a cell starting with "[" or "{"                          -> parsed as JSON (e.g. qa, words,
                                                                labels.pred.ser1.probs)
    arousal / valence / dominance / duration / start / end   -> numbers
Empty cells are left out; other columns are kept as top-level string fields. A missing `key`
becomes the audio file's stem.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path

NUMERIC_LEAVES = frozenset({"arousal", "valence", "dominance", "duration", "start", "end"})
GOLD_COLUMNS = {
    f"gold_{name}": f"labels.gold.{name}" for name in ("emotion", "arousal", "valence", "dominance", "gender")
}
QA_COLUMNS = ("question", "answer", "qa_type", "qa_origin")


class ManifestError(ValueError):
    """A manifest line or row that cannot be read; the message names file and line."""


def read_manifest(path: str | os.PathLike) -> Iterator[dict]:
    """Yield one metadata dict (with `audio`) per manifest entry; format chosen by extension."""
    path = Path(path)
    readers = {".jsonl": _read_jsonl, ".json": _read_jsonl, ".csv": _read_csv}
    if path.suffix.lower() not in readers:
        raise ManifestError(f"manifest {path}: unknown extension {path.suffix!r}; valid: .jsonl, .csv")
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} does not exist")
    for record in readers[path.suffix.lower()](path):
        if not record.get("audio"):
            raise ManifestError(f"manifest {path}: entry {record.get('key', '?')!r} has no `audio` path")
        record.setdefault("key", Path(record["audio"]).stem)
        yield record


def _read_jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{path}:{n}: not JSON ({exc})") from exc
            if not isinstance(record, dict):
                raise ManifestError(f"{path}:{n}: each line must be a JSON object")
            yield record


def _read_csv(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.DictReader(f), 2):
            try:
                yield csv_row_to_meta(row)
            except (ValueError, json.JSONDecodeError) as exc:
                raise ManifestError(f"{path}:{n}: {exc}") from exc


def csv_row_to_meta(row: dict[str, str]) -> dict:
    """One flat CSV row -> a nested metadata dict (see the module docstring for the mapping)."""
    meta: dict = {}
    for column, cell in row.items():
        if column is None or cell is None or cell.strip() == "" or column in QA_COLUMNS:
            continue
        path = GOLD_COLUMNS.get(column, column).split(".")
        _set_path(meta, path, _cell_value(path[-1], cell.strip()))
    if row.get("question") or row.get("answer"):
        pair = {
            "question": row.get("question", ""),
            "answer": row.get("answer", ""),
            "type": row.get("qa_type", ""),
            "origin": row.get("qa_origin") or "human",
        }
        meta.setdefault("qa", []).append(pair)
    return meta


def _cell_value(leaf: str, cell: str):
    if cell[0] in "[{":
        return json.loads(cell)
    if leaf in NUMERIC_LEAVES:
        try:
            return float(cell)
        except ValueError as exc:
            raise ValueError(f"column {leaf!r}: {cell!r} is not a number") from exc
    return cell


def _set_path(meta: dict, path: list[str], value) -> None:
    node = meta
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"column {'.'.join(path)!r} conflicts with a non-object value at {part!r}")
    node[path[-1]] = value
