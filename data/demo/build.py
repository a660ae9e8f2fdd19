"""Rebuild the embedded demo corpus: synthetic emotional speech, packed as OGG shards + index.

    apt-get update && apt-get install -y espeak-ng sox      # only needed to rebuild
    python data/demo/build.py                                # -> data/demo/shards/general/

12 espeak-ng voices (6 male, 6 female variants) x 60 sentences x 6 emotions rendered through prosody
(pitch level and F0 range via SSML, rate, gain, SoX effects), with per-clip jitter. Voices and sentences
are split disjointly: train 6 voices x 40 sentences, val 2 x 6, test 4 x 14 (1,848 clips). Every clip
carries its transcript, `labels.gold` (emotion, arousal/valence/dominance, gender), `neutral_text`,
`text_sentiment`, the drawn rendering parameters, and the general-source QA pairs (see qa.py).

Determinism: all draws are seeded per clip and SoX runs with `-R` (no random dither), so a rerun on the
same espeak-ng / SoX versions reproduces the manifest and the rendered audio exactly (the OGG files differ
only in their random stream serial numbers and decode to the same samples); other versions give the same
manifest fields except `duration`, and slightly different audio. The manifest's sha256 is printed.
Measured versions: espeak-ng 1.51, SoX 14.4.2 (Debian packages).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import soundfile as sf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parents[1]))

from presets import AFFECT, CORPUS, EMOTIONS, JITTER, SAMPLE_RATE, SEED, TRAIN_SENTENCES_PER_VOICE, VOICES  # noqa: E402
from qa import build_qa  # noqa: E402
from render import Prosody, clip_rng, draw_prosody, render  # noqa: E402
from sentences import all_sentences  # noqa: E402

DEFAULT_OUT = HERE / "shards" / "general"
_SENTENCES = all_sentences()


def voice_sentences(vi: int) -> list[int]:
    """Indices of the sentences voice `vi` reads: all of its split, or a rotating window for training."""
    voice = VOICES[vi]
    mine = [i for i, s in enumerate(_SENTENCES) if s.split == voice.split]
    if voice.split != "train":
        return mine
    rank = [v.id for v in VOICES if v.split == "train"].index(voice.id)
    n_voices = sum(v.split == "train" for v in VOICES)
    chosen = []
    for sentiment, count in TRAIN_SENTENCES_PER_VOICE.items():
        pool = [i for i in mine if _SENTENCES[i].sentiment == sentiment]
        start = rank * len(pool) // n_voices
        chosen += [pool[(start + j) % len(pool)] for j in range(min(count, len(pool)))]
    return sorted(chosen)


def clip_plan() -> list[tuple[int, int, int]]:
    """(voice, sentence, emotion) indices of every clip."""
    return [(vi, si, ei) for vi in range(len(VOICES)) for si in voice_sentences(vi) for ei in range(len(EMOTIONS))]


def clip_meta(vi: int, si: int, ei: int) -> tuple[dict, Prosody]:
    """Everything about a clip except its duration (labels, QA, rendering parameters), and its prosody."""
    voice, sentence, emotion = VOICES[vi], _SENTENCES[si], EMOTIONS[ei]
    rng = clip_rng(SEED, vi, si, ei)
    prosody = draw_prosody(voice, emotion, rng)
    gold = {"emotion": emotion, "gender": voice.gender}
    for dim, centre in AFFECT[emotion].items():
        gold[dim] = round(min(1.0, max(0.0, centre + rng.uniform(-JITTER["affect"], JITTER["affect"]))), 3)
    qa_rng = random.Random(f"qa:{SEED}:{vi}:{si}:{ei}")
    meta = {
        "key": f"demo_{voice.id}_{sentence.id}_{emotion}",
        "transcript": sentence.text,
        "corpus": CORPUS,
        "split": voice.split,
        "source_kind": "general",
        "speaker": voice.id,
        "sentence_id": sentence.id,
        "neutral_text": sentence.sentiment == "neutral",
        "text_sentiment": sentence.sentiment,
        "labels": {"gold": gold},
        "qa": build_qa(sentence, emotion, voice.gender, voice.split, qa_rng),
        "render": {"voice": voice.espeak, **prosody.to_dict()},
    }
    return meta, prosody


def render_clip(args: tuple[int, int, int, str]) -> dict:
    """Worker: render one clip to `audio_dir/{key}.wav`; returns its manifest row."""
    vi, si, ei, audio_dir = args
    meta, prosody = clip_meta(vi, si, ei)
    audio = render(VOICES[vi], prosody, meta["transcript"])
    rel = f"audio/{meta['key']}.wav"
    sf.write(Path(audio_dir) / rel, audio, SAMPLE_RATE, subtype="PCM_16")
    return {"audio": rel, **meta, "duration": round(len(audio) / SAMPLE_RATE, 4)}


def render_all(work: Path, workers: int) -> list[dict]:
    (work / "audio").mkdir(parents=True, exist_ok=True)
    jobs = [(vi, si, ei, str(work)) for vi, si, ei in clip_plan()]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        rows = list(pool.map(render_clip, jobs, chunksize=16))
    return sorted(rows, key=lambda r: r["key"])


def write_manifest(rows: list[dict], path: Path) -> str:
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    path.write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()


def pack_shards(manifest: list[dict], audio_root: Path, out: Path, fmt: str, shard_mb: float) -> None:
    """Pack with the project's own packer (OGG Vorbis by default) into a fresh output folder."""
    from paralm.data.pack import pack

    if out.exists():
        shutil.rmtree(out)
    report = pack(manifest, audio_root, out, fmt=fmt, shard_bytes=int(shard_mb * 1e6))
    print(report.summary())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="shard folder (replaced)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder for WAVs + manifest (default: a temp dir)")
    parser.add_argument("--workers", type=int, default=2, help="render processes")
    parser.add_argument("--format", default="ogg", help="audio format of the shards (ogg, opus, flac)")
    parser.add_argument("--shard-mb", type=float, default=8.0, help="target shard size in MB")
    parser.add_argument("--manifest-only", action="store_true", help="render + manifest, skip packing")
    args = parser.parse_args(argv)
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found; install it: apt-get install -y espeak-ng sox")
    work = args.work or Path(tempfile.mkdtemp(prefix="paralm-demo-"))
    start = time.perf_counter()
    rows = render_all(work, args.workers)
    digest = write_manifest(rows, work / "manifest.jsonl")
    print(f"rendered {len(rows)} clips in {time.perf_counter() - start:.1f} s; manifest {work / 'manifest.jsonl'} sha256 {digest}")
    if not args.manifest_only:
        pack_shards(rows, work, args.out, args.format, args.shard_mb)
        size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
        print(f"packed into {args.out}: {size / 1e6:.1f} MB in {time.perf_counter() - start:.1f} s total")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
