"""`paralm data inspect DIR`: what a shard set holds, before anyone trains on it.

Counts and durations (total / min / median / max, overall and per split), corpora, the gold label
distribution and each annotator's predicted distribution (so a skewed annotator is visible next to
gold), question types and QA origins, and the inputs refused when the set was written. `--verify`
also checks every shard's sha256 and decodes every sample, counting skips by reason. `--json`
prints the same as one JSON object for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path

from paralm.data.index import ShardIndex
from paralm.data.reader import SampleReader, SkipSample, local_shard, parse_meta, read_raw
from paralm.data.schema import DIMENSIONS
from paralm.data.skips import SkipCounter
from paralm.fault.exits import UserError


def duration_stats(durations: list[float]) -> dict:
    if not durations:
        return {"count": 0, "total_s": 0.0, "min_s": None, "median_s": None, "max_s": None}
    return {
        "count": len(durations),
        "total_s": round(sum(durations), 3),
        "min_s": round(min(durations), 3),
        "median_s": round(statistics.median(durations), 3),
        "max_s": round(max(durations), 3),
    }


def _label_stats(label_sets: list[dict]) -> dict:
    """Emotion and gender counts plus mean arousal/valence/dominance over the samples that have them."""
    emotions = Counter(s["emotion"] for s in label_sets if s.get("emotion"))
    genders = Counter(s["gender"] for s in label_sets if s.get("gender"))
    means = {}
    for dim in DIMENSIONS:
        values = [s[dim] for s in label_sets if s.get(dim) is not None]
        means[dim] = round(statistics.fmean(values), 4) if values else None
    return {
        "samples": len(label_sets),
        "emotion": dict(emotions.most_common()),
        "gender": dict(genders),
        "mean": means,
    }


def _read_metas(index: ShardIndex, problems: SkipCounter) -> list[dict]:
    metas = []
    for row in index.samples:
        try:
            meta_bytes, _ = read_raw(local_shard(index.root, row.shard), row)
            metas.append(parse_meta(meta_bytes, row.key))
        except SkipSample as exc:
            problems.add(exc.reason, row.key, row.shard, exc.detail)
    return metas


def summarize(index: ShardIndex) -> dict:
    """The inspect report as a plain dict (what `--json` prints)."""
    unreadable = SkipCounter()
    metas = _read_metas(index, unreadable)
    by_split: dict[str, list[float]] = defaultdict(list)
    for row in index.samples:
        by_split[row.split].append(row.duration)
    gold = [((m.get("labels") or {}).get("gold") or {}) for m in metas]
    preds: dict[str, list[dict]] = defaultdict(list)
    for m in metas:
        for annotator, pred in ((m.get("labels") or {}).get("pred") or {}).items():
            preds[annotator].append(pred)
    qa = [pair for m in metas for pair in m.get("qa") or []]
    return {
        "root": str(index.root),
        "samples": len(index.samples),
        "shards": len(index.shards),
        "shard_bytes": sum(s.bytes for s in index.shards),
        "duration": duration_stats([r.duration for r in index.samples]),
        "splits": {split: duration_stats(d) for split, d in sorted(by_split.items())},
        "corpora": dict(Counter(r.corpus for r in index.samples).most_common()),
        "source_kinds": dict(Counter(r.source_kind or "(unset)" for r in index.samples)),
        "gold": _label_stats([g for g in gold if g]),
        "pred": {annotator: _label_stats(sets) for annotator, sets in sorted(preds.items())},
        "qa": {
            "pairs": len(qa),
            "samples_with_qa": sum(1 for r in index.samples if r.n_qa),
            "types": dict(Counter(t for r in index.samples for t in r.qa_types).most_common()),
            "origins": dict(Counter(p["origin"] for p in qa).most_common()),
        },
        "pack_skipped": dict(Counter(r.reason for r in index.pack_skipped)),
        "index_duplicates": index.skips.total,
        "unreadable_metadata": unreadable.nonzero(),
    }


def verify(index: ShardIndex, min_duration: float = 0.0, max_duration: float | None = None) -> dict:
    """sha256 of every shard and a full decode of every sample, with skips counted by reason."""
    reader = SampleReader(index.root, min_duration=min_duration, max_duration=max_duration)
    skips = SkipCounter()
    skips.merge(index.skips)
    for row in index.samples:
        try:
            reader.read(row)
        except SkipSample as exc:
            skips.add(exc.reason, row.key, row.shard, exc.detail)
            continue
        skips.deliver()
    return {
        "sha256_problems": index.verify_shards(),
        "decode": skips.state_dict()["counts"],
        "delivered": skips.delivered,
    }


def format_text(report: dict) -> str:
    def dur(d: dict) -> str:
        if not d["count"]:
            return "0 samples"
        return (
            f"{d['count']} samples, {d['total_s'] / 3600:.2f} h "
            f"(min {d['min_s']:.2f} s, median {d['median_s']:.2f} s, max {d['max_s']:.2f} s)"
        )

    lines = [
        f"{report['root']}: {report['shards']} shard(s), {report['shard_bytes'] / 1e6:.1f} MB",
        f"all: {dur(report['duration'])}",
    ]
    lines += [f"  split {split}: {dur(d)}" for split, d in report["splits"].items()]
    lines.append(f"corpora: {report['corpora']}   source kinds: {report['source_kinds']}")
    lines.append(
        f"gold ({report['gold']['samples']} labelled): {report['gold']['emotion']} means {report['gold']['mean']}"
    )
    for annotator, stats in report["pred"].items():
        lines.append(f"pred:{annotator} ({stats['samples']}): {stats['emotion']} means {stats['mean']}")
    qa = report["qa"]
    lines.append(
        f"qa: {qa['pairs']} pairs on {qa['samples_with_qa']} samples; types {qa['types']}; origins {qa['origins']}"
    )
    for name in ("pack_skipped", "unreadable_metadata"):
        if report[name]:
            lines.append(f"{name}: {report[name]}")
    if report["index_duplicates"]:
        lines.append(f"duplicate keys set aside by the index: {report['index_duplicates']}")
    if "verify" in report:
        v = report["verify"]
        lines.append(f"verify: sha256 problems {v['sha256_problems'] or 'none'}; delivered {v['delivered']}")
        lines.append(f"verify skips: { {r: c for r, c in v['decode'].items() if c} or 'none' }")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="paralm data inspect", description="Summarise a shard set.")
    p.add_argument("dir", help="shard set directory (holds index.json)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--verify", action="store_true", help="also check sha256 and decode every sample")
    p.add_argument(
        "--min-duration", type=float, default=0.0, help="with --verify: shorter clips count as too_short"
    )
    p.add_argument(
        "--max-duration", type=float, default=None, help="with --verify: longer clips count as too_long"
    )
    args = p.parse_args(argv)
    if not Path(args.dir, "index.json").is_file():
        print(f"paralm data inspect: error: no index.json in {os.fspath(args.dir)}", file=sys.stderr)
        return 2
    try:
        index = ShardIndex.load(args.dir)
    except UserError as exc:
        print(f"paralm data inspect: error: {exc}", file=sys.stderr)
        return exc.exit_code
    report = summarize(index)
    if args.verify:
        report["verify"] = verify(index, args.min_duration, args.max_duration)
    print(json.dumps(report, indent=2) if args.json else format_text(report))
    failed = args.verify and (report["verify"]["sha256_problems"] or any(report["verify"]["decode"].values()))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
