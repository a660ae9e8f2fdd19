"""The on-disk store of cached encoder states, and the reader that serves them instead of audio.

Why: a frozen encoder gives the same frames for the same audio every epoch, every run, every ablation
row and every sweep trial, so they are computed once (paralm/features_cache.py, which may import the
model) and read here (the data layer, which may not). One store directory belongs to one encoder
fingerprint (weights, feature settings, chunking, autocast); entries are keyed by the sha256 of the
sample's encoded audio bytes, so the same clip in two shard sets is stored once, and a re-encoded or
edited clip is simply a miss.

Layout of a store directory:
    store.json            {"version", "fingerprint", "hidden_size", "sample_rate", "settings": {...}}
    parts/<name>.npy      (sum of frames, D) states of many clips, concatenated (bf16 kept as uint16 bits)
    parts/<name>.json     {"dtype", "entries": {digest: [start, frames, n_samples]},
                           "skips": {digest: [reason, detail]}}   (written last: marks the part complete)
Parts are immutable and written atomically, so several runs may fill one store at the same time.

`CachedSampleReader.read(row)` mirrors `SampleReader.read`: it reads the metadata and the audio bytes by
offset (no decoding), hashes the audio, and returns a `CachedSample` carrying the states (F, D) and the
clip's sample count; it raises `SkipSample` for the same reasons, in the same order, as decoding would.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from paralm.atomic_files import atomic_open, atomic_write_bytes
from paralm.data.index import IndexRow
from paralm.data.reader import LoadedSample, SampleReader, SkipSample, parse_meta, read_raw

STORE_VERSION = 1
STORE_FILE = "store.json"
PARTS_DIR = "parts"
_DTYPES = {"float32": (np.float32, None), "float16": (np.float16, None), "bfloat16": (np.uint16, torch.bfloat16)}


class StaleFeatureCache(RuntimeError):
    """The store has no entry for a sample's audio: the cache must be (re)filled before reading."""


def audio_digest(data: bytes) -> str:
    """sha256 of a sample's encoded audio bytes: the cache key."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """Where one clip's states live: rows [start, start + frames) of a part; n_samples at the store rate."""

    part: str
    start: int
    frames: int
    n_samples: int


@dataclass
class CachedSample(LoadedSample):
    """A sample whose encoder states come from the cache: `audio` is empty, `encoder_states` (F, D)."""

    encoder_states: torch.Tensor | None = None
    n_samples: int = 0

    @property
    def duration(self) -> float:
        return self.n_samples / self.sample_rate


def init_store(path: str | os.PathLike, fingerprint: str, hidden_size: int, sample_rate: int,
               settings: dict) -> Path:
    """Create (or check) the store directory of one fingerprint; returns its path."""
    path = Path(path)
    (path / PARTS_DIR).mkdir(parents=True, exist_ok=True)
    doc = {"version": STORE_VERSION, "fingerprint": fingerprint, "hidden_size": int(hidden_size),
           "sample_rate": int(sample_rate), "settings": settings}
    meta = path / STORE_FILE
    if meta.is_file():
        found = json.loads(meta.read_text())
        if found.get("fingerprint") != fingerprint:
            raise ValueError(f"{meta} belongs to fingerprint {found.get('fingerprint')!r}, not {fingerprint!r}")
        return path
    atomic_write_bytes(meta, json.dumps(doc, indent=1, sort_keys=True).encode())
    return path


def write_part(store: str | os.PathLike, states: list[torch.Tensor], digests: list[str], n_samples: list[int],
               skips: dict[str, tuple[str, str]] | None = None) -> Path | None:
    """Write one part: clip states (F_i, D) keyed by audio digest, plus clips that could not be encoded.

    Returns the part's json path (None when there was nothing to write). The name is derived from the
    content, so two writers of the same clips produce the same part.
    """
    skips = dict(skips or {})
    if not states and not skips:
        return None
    dtype = states[0].dtype if states else torch.float32
    name = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}.get(dtype)
    if name is None:
        raise ValueError(f"cannot store encoder states of dtype {dtype}; valid: float32, float16, bfloat16")
    entries, start = {}, 0
    for digest, s, n in zip(digests, states, n_samples, strict=True):
        entries[digest] = [start, int(s.shape[0]), int(n)]
        start += int(s.shape[0])
    part_id = hashlib.sha256(json.dumps([sorted(entries), sorted(skips)]).encode()).hexdigest()[:20]
    parts = Path(store) / PARTS_DIR
    if states:
        flat = torch.cat([s.detach().cpu() for s in states]).contiguous()
        array = flat.view(torch.uint16).numpy() if dtype == torch.bfloat16 else flat.numpy()
        with atomic_open(parts / f"{part_id}.npy", "wb") as f:
            np.save(f, array, allow_pickle=False)
    doc = {"dtype": name, "entries": entries, "skips": {k: list(v) for k, v in skips.items()}}
    target = parts / f"{part_id}.json"
    atomic_write_bytes(target, json.dumps(doc).encode())
    return target


class FeatureStore:
    """Read-only view of a store directory; parts are listed lazily and memory-mapped per process.

    Args:
        path: the store directory (one encoder fingerprint), as returned by `ensure_feature_cache`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        meta = self.path / STORE_FILE
        if not meta.is_file():
            raise FileNotFoundError(f"no feature store at {self.path} (missing {STORE_FILE}); fill it with "
                                    "paralm.features_cache.ensure_feature_cache")
        self.meta = json.loads(meta.read_text())
        if self.meta.get("version") != STORE_VERSION:
            raise ValueError(f"{meta}: store version {self.meta.get('version')!r} not supported; valid: {STORE_VERSION}")
        self._entries: dict[str, CacheEntry] | None = None
        self._skips: dict[str, tuple[str, str]] = {}
        self._dtypes: dict[str, str] = {}
        self._arrays: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_arrays"] = {}  # memory maps are reopened in each worker process
        return state

    def reload(self) -> FeatureStore:
        self._entries, self._skips, self._dtypes, self._arrays = None, {}, {}, {}
        return self

    def _load(self) -> dict[str, CacheEntry]:
        if self._entries is None:
            entries: dict[str, CacheEntry] = {}
            for part in sorted((self.path / PARTS_DIR).glob("*.json")):
                doc = json.loads(part.read_text())
                self._dtypes[part.stem] = doc["dtype"]
                for digest, (start, frames, n) in doc["entries"].items():
                    entries.setdefault(digest, CacheEntry(part.stem, int(start), int(frames), int(n)))
                for digest, (reason, detail) in doc.get("skips", {}).items():
                    self._skips.setdefault(digest, (reason, detail))
            self._entries = entries
        return self._entries

    def known(self) -> set[str]:
        """Digests with an entry or a recorded skip."""
        return set(self._load()) | set(self._skips)

    def lookup(self, digest: str) -> CacheEntry | tuple[str, str] | None:
        """The entry, a (reason, detail) skip recorded when the clip could not be decoded, or None."""
        entries = self._load()
        return entries.get(digest) or self._skips.get(digest)

    def states(self, entry: CacheEntry) -> torch.Tensor:
        """(frames, D) encoder states of one clip, copied out of the memory-mapped part."""
        if entry.part not in self._arrays:
            self._arrays[entry.part] = np.load(self.path / PARTS_DIR / f"{entry.part}.npy", mmap_mode="r")
        rows = np.array(self._arrays[entry.part][entry.start : entry.start + entry.frames])
        tensor = torch.from_numpy(rows)
        view = _DTYPES[self._dtypes[entry.part]][1]
        return tensor.view(view) if view is not None else tensor


class CachedSampleReader:
    """`SampleReader.read` with encoder states from a store instead of decoded audio.

    Args:
        reader: the SampleReader it stands in for (shard root, duration limits, transcript rule).
        store: the feature store of the model's encoder.
    """

    def __init__(self, reader: SampleReader, store: FeatureStore) -> None:
        if int(store.meta["sample_rate"]) != reader.opts.sample_rate:
            raise ValueError(f"feature store was built at {store.meta['sample_rate']} Hz but the reader "
                             f"resamples to {reader.opts.sample_rate} Hz; refill the cache for this model")
        self.reader = reader
        self.store = store

    def read(self, row: IndexRow) -> CachedSample:
        opts = self.reader.opts
        meta_bytes, audio = read_raw(self.reader.shard_path(row), row)
        meta = parse_meta(meta_bytes, row.key)
        if opts.require_transcript and not meta["transcript"].strip():
            raise SkipSample("empty_transcript", "transcript is empty")
        found = self.store.lookup(audio_digest(audio))
        if found is None:
            raise StaleFeatureCache(
                f"feature store {self.store.path} has no states for sample {row.key!r} of {row.shard} (its audio "
                "changed or it was never encoded); run ensure_feature_cache for this source before training"
            )
        if isinstance(found, tuple):
            raise SkipSample(*found)
        seconds = found.n_samples / opts.sample_rate
        if seconds < opts.min_duration:
            raise SkipSample("too_short", f"{seconds:.3f} s < min_duration {opts.min_duration} s")
        if opts.max_duration is not None and seconds > opts.max_duration:
            raise SkipSample("too_long", f"{seconds:.3f} s > max_duration {opts.max_duration} s")
        if not math.isclose(meta["duration"], row.duration, abs_tol=1e-3):
            raise SkipSample("schema", f"metadata duration {meta['duration']} != indexed {row.duration}")
        return CachedSample(key=row.key, audio=np.zeros(0, dtype=np.float32), sample_rate=opts.sample_rate,
                            meta=meta, shard=row.shard, encoder_states=self.store.states(found),
                            n_samples=found.n_samples)
