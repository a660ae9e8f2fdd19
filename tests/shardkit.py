"""Tiny corpora and shard sets with seeded damage, for every test that touches the data layer.

`make_corpus` writes WAV clips and a manifest (the input of `paralm data pack`); `add_bad_inputs`
appends inputs that packing must refuse. `corrupt_shards` copies a packed set into a new directory
while injecting one kind of damage per chosen sample (plus a truncated and a zero-byte shard) and
writes the index as it was before the damage, the way a disk or a buggy tool would leave it. It
returns what was injected and what each reading path must therefore count.
"""

from __future__ import annotations

import io
import json
import pickle
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from paralm.data.index import IndexRow, ShardIndex, ShardRow
from paralm.data.reader import iter_samples
from paralm.data.schema import EMOTIONS
from paralm.data.skips import SKIP_REASONS
from paralm.data.tario import TarWriter

WORDS = "the train was late again and nobody said a word about it until the evening news came on".split()
# every skip reason is injected per sample except truncation, which damages a whole shard (`truncate_*`);
# a reason added to SKIP_REASONS without an injector here gets nothing injected, so the corruption test fails
SAMPLE_FAULTS = tuple(r for r in SKIP_REASONS if r != "truncated_shard")


@dataclass
class Corpus:
    """A manifest and its audio files on disk; `records` are the manifest entries in order."""

    root: Path
    audio_root: Path
    manifest: Path
    records: list[dict]


def tone(seconds: float, sample_rate: int, seed: int, freq: float = 220.0) -> np.ndarray:
    """(n,) float32: a decaying tone plus a little noise; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    wav = 0.3 * np.sin(2 * np.pi * freq * t) * np.exp(-t) + 0.01 * rng.standard_normal(t.shape)
    return wav.astype(np.float32)


def encode(wav: np.ndarray, sample_rate: int, fmt: str = "FLAC", subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wav, sample_rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def sample_meta(i: int, rng: random.Random) -> dict:
    """Metadata of clip i: gold and predicted labels kept apart, one or two QA pairs."""
    emotion = EMOTIONS[i % len(EMOTIONS)]
    pred_emotion = emotion if rng.random() < 0.7 else rng.choice(EMOTIONS)
    probs = {e: 0.04 for e in EMOTIONS}
    probs[pred_emotion] = round(1 - 0.04 * (len(EMOTIONS) - 1), 2)
    qa = [
        {
            "question": "How does the speaker sound?",
            "answer": f"The speaker sounds {emotion}.",
            "type": "DP",
            "origin": "template",
        }
    ]
    if i % 2:
        qa.append(
            {
                "question": "What is said?",
                "answer": "Something about a train.",
                "type": "C",
                "origin": "human",
            }
        )
    return {
        "key": f"s{i:05d}",
        "transcript": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))),
        "corpus": "kit",
        "split": "val" if i % 5 == 4 else "train",
        "labels": {
            "gold": {
                "emotion": emotion,
                "arousal": round(rng.random(), 3),
                "valence": round(rng.random(), 3),
                "gender": rng.choice(("female", "male")),
            },
            "pred": {
                "ser": {
                    "emotion": pred_emotion,
                    "probs": probs,
                    "arousal": round(rng.random(), 3),
                    "version": "1",
                }
            },
        },
        "qa": qa,
    }


def make_corpus(tmp, n: int, seed: int = 0, durations=(0.5, 1.5), sample_rate: int = 16000) -> Corpus:
    """n WAV clips + manifest.jsonl under tmp/corpus. durations: (low, high) uniform range or a list of n."""
    rng = random.Random(seed)
    root = Path(tmp) / "corpus"
    audio_root = root / "audio"
    audio_root.mkdir(parents=True, exist_ok=True)
    if isinstance(durations, tuple):
        durations = [round(rng.uniform(*durations), 3) for _ in range(n)]
    records = []
    for i in range(n):
        meta = sample_meta(i, rng)
        rel = f"spk{i % 3}/{meta['key']}.wav"
        (audio_root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(
            audio_root / rel,
            tone(durations[i], sample_rate, seed * 100003 + i, 150 + 20 * (i % 7)),
            sample_rate,
            subtype="PCM_16",
        )
        records.append({"audio": rel, **meta})
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    return Corpus(root, audio_root, manifest, records)


def add_bad_inputs(corpus: Corpus, sample_rate: int = 16000) -> dict[str, list[str]]:
    """Append inputs `pack` must refuse; returns reason -> keys. Rewrites the manifest."""
    bad = corpus.audio_root / "bad"
    bad.mkdir(exist_ok=True)
    (bad / "garbage.wav").write_bytes(b"RIFF" + bytes(range(256)) * 4)
    sf.write(
        bad / "nan.wav", np.array([0.1, np.nan, 0.2] * 800, dtype=np.float32), sample_rate, subtype="FLOAT"
    )
    sf.write(bad / "empty.wav", np.zeros(0, dtype=np.float32), sample_rate, subtype="PCM_16")
    template = {k: v for k, v in corpus.records[0].items() if k not in ("audio", "key")}
    schema_bad = {**template, "labels": {"gold": {"emotion": "joyful"}}}
    extra = [
        ("corrupt_audio", {"audio": "bad/garbage.wav", "key": "bad_garbage", **template}),
        ("missing_member", {"audio": "bad/nowhere.wav", "key": "bad_missing", **template}),
        ("non_finite_audio", {"audio": "bad/nan.wav", "key": "bad_nan", **template}),
        ("too_short", {"audio": "bad/empty.wav", "key": "bad_empty", **template}),
        ("duplicate_key", {**corpus.records[1], "audio": corpus.records[2]["audio"]}),
        ("schema", {"audio": corpus.records[3]["audio"], "key": "bad_schema", **schema_bad}),
    ]
    corpus.records.extend(r for _, r in extra)
    corpus.manifest.write_text("".join(json.dumps(r) + "\n" for r in corpus.records))
    return {reason: [r["key"]] for reason, r in extra}


@dataclass
class Injected:
    """What `corrupt_shards` did and what readers must report.

    read: skip counts for indexed reading (ShardIndex.load duplicates + SampleReader over its rows).
    scan: skip counts for sequential reading (scan_shard / streaming), where a cut or empty shard
        is one `truncated_shard` each (the samples it lost cannot be known without an index).
    delivered: samples both paths must deliver. keys: fault -> affected keys.
    """

    out_dir: Path
    read: dict[str, int] = field(default_factory=dict)
    scan: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    keys: dict[str, list[str]] = field(default_factory=dict)


def _members(meta: dict, audio: bytes, ext: str, fault: str | None, lim: tuple[float, float], seed: int):
    """(members, indexed meta, audio member name) for one sample with `fault` applied."""
    key, rng = meta["key"], random.Random(seed)
    as_json = lambda m: json.dumps(m).encode()  # noqa: E731
    if fault in ("too_long", "too_short"):
        seconds = lim[1] + 0.5 if fault == "too_long" else lim[0] / 2
        audio, meta = encode(tone(seconds, 16000, seed), 16000), {**meta, "duration": seconds}
    jbytes, name = as_json(meta), f"{key}.{ext}"
    if fault == "corrupt_audio":
        audio = b"JUNK" + rng.randbytes(len(audio) - 4)
    elif fault == "bad_json":
        jbytes = f'{{"key": "{key}", "transcript": '.encode()
    elif fault == "schema":
        jbytes = as_json({**meta, "corpus": "", "split": "train/../val"})
    elif fault == "empty_transcript":
        jbytes = as_json({**meta, "transcript": "  "})
    elif fault == "non_finite_audio":
        wav = tone(meta["duration"], 16000, seed)
        wav[::97] = np.nan
        audio, name = encode(wav, 16000, "WAV", "FLOAT"), f"{key}.wav"
    elif fault == "unsupported_member":
        audio, name = pickle.dumps({"payload": "never unpickled"}), f"{key}.pyd"
    elif fault == "unsafe_member_name":
        name = f"../{key}.{ext}" if seed % 2 else f"{key}\x1b[2J.{ext}"
        return [(name, audio), (name.rsplit(".", 1)[0] + ".json", jbytes)], meta, name
    if fault == "missing_member":
        return [(f"{key}.json", jbytes)], meta, name
    return [(name, audio), (f"{key}.json", jbytes)], meta, name


def corrupt_shards(
    src_dir,
    out_dir,
    seed: int = 0,
    faults: dict[str, int] | None = None,
    n_shards: int = 4,
    min_duration: float = 0.25,
    max_duration: float = 3.0,
) -> Injected:
    """Copy the packed set in `src_dir` to `out_dir` as `n_shards` shards, damaging it on the way.

    `faults` maps each name in SAMPLE_FAULTS to how many samples get it (default 1 each); they are
    placed in the first n_shards - 2 shards. Shard n_shards - 2 is cut in the middle of a sample's
    audio and the last shard is emptied to zero bytes. The index written describes the set before
    the damage (with the duplicate's row included), exactly like a stale index on a damaged disk.
    """
    clean = list(iter_samples(ShardIndex.load(src_dir)))
    faults = dict.fromkeys(SAMPLE_FAULTS, 1) if faults is None else faults
    per_shard = -(-len(clean) // n_shards)
    groups = [clean[i * per_shard : (i + 1) * per_shard] for i in range(n_shards)]
    rng = random.Random(seed)
    slots = rng.sample(range(sum(len(g) for g in groups[:-2])), sum(faults.values()))
    assigned = iter(slots)
    fault_of = {next(assigned): name for name, count in faults.items() for _ in range(count)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True)
    inj = Injected(out_dir, keys={})
    index = ShardIndex(root=out_dir)
    position = 0
    for s, group in enumerate(groups):
        tar, rows = TarWriter(out_dir / f"kit-{s:06d}.tar"), []
        for row, meta, audio in group:
            fault = fault_of.get(position) if s < n_shards - 2 else None
            position += 1
            rows += _write_sample(
                tar, row, meta, audio, fault, (min_duration, max_duration), seed * 7919 + position
            )
            inj.keys.setdefault(fault or "clean", []).append(meta["key"])
        sha, size = tar.close()
        index.shards.append(ShardRow(tar.path.name, len(rows), sum(r.duration for r in rows), sha, size))
        index.samples.extend(rows)
    _cut_and_empty(out_dir, index, groups, inj)
    index.save()
    lost = inj.read.get("truncated_shard", 0)
    inj.read.update({f: c for f, c in faults.items() if c})
    inj.scan.update({f: c for f, c in faults.items() if c})
    inj.scan["truncated_shard"] = 2
    inj.delivered = len(clean) - sum(c for f, c in faults.items() if f != "duplicate_key") - lost
    return inj


def _write_sample(
    tar: TarWriter, row: IndexRow, meta: dict, audio: bytes, fault, lim, seed
) -> list[IndexRow]:
    ext = row.audio_member.split(".", 1)[1]
    members, indexed_meta, audio_name = _members(meta, audio, ext, fault, lim, seed)
    offsets = {name: (tar.add(name, data), len(data)) for name, data in members}
    json_name = next(n for n in offsets if n.endswith(".json"))
    audio_at = offsets.get(
        audio_name, offsets[json_name]
    )  # a missing member: the index still points somewhere
    new = IndexRow.from_meta(indexed_meta, tar.path.name, audio_name, (*audio_at, *offsets[json_name]))
    if fault != "duplicate_key":
        return [new]
    copy_at = {name: (tar.add(name, data), len(data)) for name, data in members}
    dup = IndexRow.from_meta(
        indexed_meta, tar.path.name, audio_name, (*copy_at[audio_name], *copy_at[json_name])
    )
    return [new, dup]


def _cut_and_empty(out_dir: Path, index: ShardIndex, groups, inj: Injected) -> None:
    """Cut the second-to-last shard inside the audio of its middle sample; empty the last shard."""
    cut_shard, empty_shard = index.shards[-2].path, index.shards[-1].path
    cut_rows = [r for r in index.samples if r.shard == cut_shard]
    victim = cut_rows[len(cut_rows) // 2]
    with open(out_dir / cut_shard, "r+b") as f:
        f.truncate(victim.audio_offset + victim.audio_size // 2)
    (out_dir / empty_shard).write_bytes(b"")
    lost = len(cut_rows) - len(cut_rows) // 2 + len([r for r in index.samples if r.shard == empty_shard])
    inj.read["truncated_shard"] = lost
