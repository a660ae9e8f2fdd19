"""Read a packing manifest (JSONL or CSV) into metadata dicts with an `audio` path each.

JSONL: one object per line, already in the shard layout (see paralm.data.schema) plus `audio`, the
audio file path relative to the audio root. `duration` is measured when packing and need not be given.

CSV: one row per clip, flat columns mapped onto the layout:
    audio, key, transcript, corpus, split, source_kind      -> the same top-level fields
    gold_emotion, gold_arousal, gold_valence,
    gold_dominance, gold_gender                              -> labels.gold.<field>
    any dotted column, e.g. labels.pred.ser1.emotion         -> that nested path
    question, answer, qa_type, qa_origin (default human),
    qa_asks (optional: what the question asks)                -> one entry of qa
    a cell starting with "[" or "{"                          -> parsed as JSON (e.g. qa, words,
                                                                labels.pred.ser1.probs)
    arousal / valence / dominance / duration / start / end   -> numbers
Empty cells are left out; other columns are kept as top-level string fields. A missing `key`
becomes the audio file's stem.

One bad row never sinks a pack: a row that is JSON to Python but not strict JSON (NaN, Infinity, a
5,000-digit integer, a lone surrogate, 100k-deep nesting), an `audio` that is not a path string, or a
CSV cell that does not parse comes out as a `RowProblem` (reason + detail, counted by the packer). Only a
file that is not JSON Lines at all (a line that does not parse, a line that is not an object) or a row
without `audio` stops the run, naming file:line. Every good row is a `ManifestRecord`: a plain dict that
also knows where it came from (`where` = "file:line"), so reports can point at both rows of a duplicate.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from paralm.data.schema import StrictJSONError, dumps_strict, loads_strict

NUMERIC_LEAVES = frozenset({"arousal", "valence", "dominance", "duration", "start", "end"})
GOLD_COLUMNS = {
    f"gold_{name}": f"labels.gold.{name}" for name in ("emotion", "arousal", "valence", "dominance", "gender")
}
QA_COLUMNS = ("question", "answer", "qa_type", "qa_origin", "qa_asks")


class ManifestError(ValueError):
    """A manifest that cannot be read at all (not JSON Lines, no `audio`); the message names file and line."""


class ManifestRecord(dict):
    """One manifest entry (a dict of metadata + `audio`) that remembers its "file:line" in `where`."""

    where: str = ""


@dataclass(frozen=True)
class RowProblem:
    """A manifest row that cannot be packed; counted as a skip (`reason` is a skip reason), never fatal."""

    where: str
    key: str
    audio: str
    reason: str
    detail: str


def read_manifest(path: str | os.PathLike) -> Iterator[ManifestRecord | RowProblem]:
    """Yield one `ManifestRecord` (with `audio`) or `RowProblem` per manifest entry; format by extension."""
    path = Path(path)
    readers = {".jsonl": _read_jsonl, ".json": _read_jsonl, ".csv": _read_csv}
    if path.suffix.lower() not in readers:
        raise ManifestError(f"manifest {path}: unknown extension {path.suffix!r}; valid: .jsonl, .csv")
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} does not exist")
    for where, record in readers[path.suffix.lower()](path):
        if isinstance(record, RowProblem):
            yield record
            continue
        if record.get("audio") in (None, ""):
            raise ManifestError(f"{where}: entry {record.get('key', '?')!r} has no `audio` path")
        problem = row_problem(record)
        if problem is not None:
            reason, detail = problem
            yield RowProblem(where, _text(record.get("key", "")), _text(record["audio"]), reason, f"{where}: {detail}")
            continue
        record.setdefault("key", Path(record["audio"]).stem)
        out = ManifestRecord(record)
        out.where = where
        yield out


def row_problem(record: dict) -> tuple[str, str] | None:
    """(skip reason, detail) when `record` cannot be packed whatever its audio holds; None when it may be."""
    audio = record.get("audio")
    if not isinstance(audio, str) or not audio:
        return "schema", f"`audio` must be a non-empty path string, got {type(audio).__name__}"
    if any(ord(c) < 32 or ord(c) == 127 for c in audio):
        return "schema", "`audio` path holds control characters"
    try:
        dumps_strict(record)
    except (ValueError, RecursionError) as exc:  # NaN/inf, lone surrogates, too deep, too long
        return "bad_json", f"not strict JSON: {str(exc)[:200]}"
    return None


def _text(value) -> str:
    """A printable one-line stand-in for any value (key or audio of a bad row)."""
    text = value if isinstance(value, str) else repr(value)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:200]


def _read_jsonl(path: Path) -> Iterator[tuple[str, dict | RowProblem]]:
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                record = loads_strict(line.encode("utf-8", "surrogateescape"))
            except StrictJSONError as exc:
                yield where, RowProblem(where, "", "", "bad_json", f"{where}: {exc}")
                continue
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{where}: not JSON ({exc})") from exc
            if not isinstance(record, dict):
                raise ManifestError(f"{where}: each line must be a JSON object")
            yield where, record


def _read_csv(path: Path) -> Iterator[tuple[str, dict | RowProblem]]:
    with open(path, encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.DictReader(f), 2):
            where = f"{path}:{n}"
            try:
                yield where, csv_row_to_meta(row)
            except (ValueError, RecursionError) as exc:
                key, audio = row.get("key") or "", row.get("audio") or ""
                yield where, RowProblem(where, key, audio, "schema", f"{where}: {str(exc)[:300]}")


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
        if (row.get("qa_asks") or "").strip():
            pair["asks"] = row["qa_asks"].strip()
        meta.setdefault("qa", []).append(pair)
    return meta


def _cell_value(leaf: str, cell: str):
    if cell[0] in "[{":
        return loads_strict(cell)
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
