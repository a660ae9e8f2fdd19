"""The finished output of `paralm data generate`: implicit shards, failures list and report.

Written only once every clip is finished, into a temporary folder renamed to `--out` at the end, so `--out`
either does not exist or holds a complete result. Samples keep the input's order; each gets its kept pairs
appended to `meta["qa"]`, `meta["source_kind"] = "implicit"` (the index's source_kind column follows) and a
`provenance.generate` record. Clips without kept pairs (failed, all filtered, or leaking an evaluation
clip) are left out and counted.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from paralm.creation.stage import stamp_provenance

REPORT_NAME = "generate_report.json"
FAILURES_NAME = "failures.jsonl"


def summarise(records: dict[str, dict], unfinished: dict[str, dict], leaked: list[str], n_inputs: int,
              usage: dict, provenance: dict) -> dict:
    """Counts of the whole run: clips by outcome, failures, invalid generations, filtered pairs, pair types."""
    failures, invalid, filtered, types = Counter(), Counter(), Counter(), Counter()
    ok = no_pairs = 0
    for rec in records.values():
        invalid.update(rec.get("invalid", {}))
        if rec["status"] == "failed":
            failures[rec["reason"]] += 1
            continue
        filtered.update(rec.get("filtered", {}))
        types.update(p["type"] for p in rec["pairs"])
        ok += bool(rec["pairs"])
        no_pairs += not rec["pairs"]
    for rec in unfinished.values():
        failures[rec["reason"]] += 1
    return {
        "generator": provenance,
        "clips": {"inputs": n_inputs, "leak_key": len(leaked), "with_pairs": ok, "all_filtered": no_pairs,
                  "failed": sum(r["status"] == "failed" for r in records.values()), "unfinished": len(unfinished)},
        "failures": dict(sorted(failures.items())),
        "invalid_generations": dict(sorted(invalid.items())),
        "filtered": dict(sorted(filtered.items())),
        "pairs": {"total": sum(types.values()), **dict(sorted(types.items()))},
        "usage_this_run": usage,
    }


def format_summary(rep: dict) -> str:
    lines = ["generate:"]
    for section in ("clips", "failures", "invalid_generations", "filtered", "pairs"):
        items = rep.get(section) or {}
        lines.append(f"  {section}: " + (", ".join(f"{k}={v}" for k, v in items.items()) or "none"))
    usage = rep.get("usage_this_run") or {}
    if usage:
        lines.append("  usage (this run): " + ", ".join(f"{k}={usage[k]}" for k in
                                                        ("requests_sent", "retries", "cache_hits",
                                                         "prompt_tokens", "completion_tokens", "cost_usd",
                                                         "usage_missing", "usage_invalid", "budget_refused")
                                                        if k in usage))
    return "\n".join(lines)


def failure_rows(records: dict[str, dict], unfinished: dict[str, dict], leaked: list[str]) -> list[dict]:
    """One row per clip without output, sorted by key: key, reason, detail."""
    rows = [{"key": k, "reason": r["reason"], "detail": r.get("detail", "")}
            for k, r in {**records, **unfinished}.items() if r["status"] == "failed"]
    rows += [{"key": k, "reason": "leak_key", "detail": "the clip (or its parent) is in an evaluation set"}
             for k in leaked]
    return sorted(rows, key=lambda r: r["key"])


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def _implicit_samples(src: Path, records: dict[str, dict], provenance: dict, skips):
    from paralm.data.index import ShardIndex
    from paralm.data.reader import iter_samples

    for row, meta, audio in iter_samples(ShardIndex.load(src), skips):
        rec = records.get(row.key)
        if rec is None or rec["status"] != "ok" or not rec["pairs"]:
            continue
        meta = dict(meta, qa=list(meta.get("qa") or []) + rec["pairs"], source_kind="implicit")
        yield stamp_provenance(meta, "generate", provenance), audio, row.audio_member.rsplit(".", 1)[-1]


def write_output(src: Path, out: Path, records: dict[str, dict], failures: list[dict], report: dict,
                 provenance: dict) -> None:
    """Shards + index + failures + report into a temporary folder, then renamed to `out`."""
    from paralm.data.shards import write_shards
    from paralm.data.skips import SkipCounter
    from paralm.data.staging import new_staging, publish

    tmp = new_staging(out)  # the one staging helper every shard-writing stage uses
    skips = SkipCounter()
    index = write_shards(_implicit_samples(src, records, provenance, skips), tmp)
    report["clips"]["written"] = len(index.samples)
    report["input_skips"] = skips.counts
    write_jsonl(tmp / FAILURES_NAME, failures)
    (tmp / REPORT_NAME).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    publish(tmp, out)  # only an empty folder can be here (checked before the run)
