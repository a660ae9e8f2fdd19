"""Fill the encoder-state cache of a frozen encoder: computed once, reused by every run that shares it.

Why: with a frozen encoder, encoding is the same work every epoch of every run; on a sweep of many
short runs over one corpus it can be most of the step. `ensure_feature_cache` encodes what is missing
and returns the store directory that `MixtureDataModule` reads (paralm/data/feature_store.py).

A cache hit needs the same encoder fingerprint and the same audio bytes:
    fingerprint = sha256(store version, encoder class, every state_dict tensor (name, dtype, shape,
                  bytes), FeatureSpec, chunk size, conv layout, autocast dtype)   -> one store directory
    entry key   = sha256(the sample's encoded audio bytes)                       -> one entry
So changed weights, a cast to another dtype, other mel settings or chunking give a new store (a miss),
and an edited clip gives a new entry; nothing stale can be read. The states are the encoder's output on
the clip's real length, exactly what online encoding feeds the projector.

    from paralm.feature_store_fill import ensure_feature_cache
    path = ensure_feature_cache(net, sources, "cache/features")     # once; later calls only check
    # training runs: MixtureDataModule(..., feature_cache="cache/features") (callbacks/encoder_cache.py,
    # which SpeechLMModule adds to every Trainer, fills and attaches the store at setup; several ranks
    # each encode their share)
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from paralm.audio import log_mel
from paralm.data.feature_store import STORE_VERSION, FeatureStore, audio_digest, init_store, write_part
from paralm.data.index import IndexRow
from paralm.data.reader import DecodeOptions, SkipSample, decode_audio, read_raw
from paralm.data.sources import SourceSpec, load_source
from paralm.model.trainable import has_trainable

log = logging.getLogger(__name__)
AUTOCAST_BY_PRECISION = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


@dataclass
class _Pending:
    """A clip to encode: where its audio is and its cache key."""

    digest: str
    path: Path
    row: IndexRow


def _encoder_of(net_or_encoder: nn.Module) -> nn.Module:
    encoder = getattr(net_or_encoder, "encoder", net_or_encoder)
    if not hasattr(encoder, "feature_spec") or not hasattr(encoder, "chunk_frames"):
        raise TypeError(f"expected a SpeechLM or a SpeechEncoder, got {type(net_or_encoder).__name__}")
    if has_trainable(encoder):
        raise ValueError("the encoder has trainable parameters; cached states are only valid for a frozen encoder")
    return encoder


def encoder_fingerprint(encoder: nn.Module, autocast_dtype: torch.dtype | None = None) -> tuple[str, dict]:
    """(sha256 hex, readable settings) of everything that decides the encoder's output for given audio."""
    settings = {
        "store_version": STORE_VERSION,
        "encoder": f"{type(encoder).__module__}.{type(encoder).__qualname__}",
        "features": encoder.feature_spec().to_dict(),
        "chunk_frames": int(encoder.chunk_frames),
        "convs": [list(c.__dict__.values()) for c in encoder.token_convs()],
        "autocast": str(autocast_dtype) if autocast_dtype is not None else None,
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest(), settings


def _pending_clips(sources: list[SourceSpec]) -> dict[str, _Pending]:
    """Every readable clip of the sources' splits by audio digest (unreadable ones the reader will skip)."""
    found: dict[str, _Pending] = {}
    for spec in sources:
        src = load_source(spec)
        for row in src.rows:
            path = src.root / row.shard
            try:
                _, audio = read_raw(path, row)
            except SkipSample:
                continue  # truncated shard / missing member: the training reader counts it the same way
            found.setdefault(audio_digest(audio), _Pending(audio_digest(audio), path, row))
    return found


def _batches(clips: list[_Pending], max_seconds: float, max_items: int) -> list[list[_Pending]]:
    """Clips sorted by duration, cut into batches of at most `max_seconds` padded audio (little padding)."""
    ordered = sorted(clips, key=lambda c: c.row.duration)
    batches, current = [], []
    for clip in ordered:
        if current and (len(current) >= max_items or (len(current) + 1) * clip.row.duration > max_seconds):
            batches.append(current)
            current = []
        current.append(clip)
    return batches + ([current] if current else [])


@torch.no_grad()
def _encode_batch(encoder: nn.Module, clips: list[_Pending], device: torch.device,
                  autocast_dtype: torch.dtype | None) -> tuple[list, dict[str, tuple[str, str]]]:
    """[(digest, states (F, D), n_samples)], skips {digest: (reason, detail)} for one batch."""
    spec = encoder.feature_spec()
    opts = DecodeOptions(sample_rate=spec.sample_rate, min_duration=0.0, max_duration=None)
    feats, kept, skips = [], [], {}
    for clip in clips:
        try:
            wav = decode_audio(read_raw(clip.path, clip.row)[1], opts)
        except SkipSample as err:
            skips[clip.digest] = (err.reason, err.detail)
            continue
        feats.append(log_mel(wav, spec))  # (C, T_i)
        kept.append((clip.digest, len(wav)))
    if not feats:
        return [], skips
    lengths = torch.tensor([f.shape[-1] for f in feats], dtype=torch.long)
    padded = torch.zeros(len(feats), feats[0].shape[0], int(lengths.max()))
    for b, f in enumerate(feats):
        padded[b, :, : f.shape[-1]] = f
    amp = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else nullcontext()
    with amp:
        frames, frame_lengths = encoder(padded.to(device), lengths.to(device))  # (B, F, D), (B,)
    out = [(d, frames[b, : int(frame_lengths[b])].cpu(), n) for b, (d, n) in enumerate(kept)]
    return out, skips


def _encode_share(encoder, clips, store_dir, device, autocast_dtype, max_seconds, max_items, part_bytes) -> int:
    """Encode `clips` into parts of about `part_bytes`; returns how many clips were written."""
    states, digests, counts, skips, size, written = [], [], [], {}, 0, 0
    for batch in _batches(clips, max_seconds, max_items):
        encoded, batch_skips = _encode_batch(encoder, batch, device, autocast_dtype)
        skips.update(batch_skips)
        for digest, s, n in encoded:
            states.append(s), digests.append(digest), counts.append(n)
            size += s.numel() * s.element_size()
        if size >= part_bytes:
            write_part(store_dir, states, digests, counts, skips)
            written += len(states) + len(skips)
            states, digests, counts, skips, size = [], [], [], {}, 0
    write_part(store_dir, states, digests, counts, skips)
    return written + len(states) + len(skips)


def ensure_feature_cache(
    net_or_encoder: nn.Module,
    sources: list[SourceSpec],
    cache_dir: str | Path,
    device: torch.device | str | None = None,
    autocast_dtype: torch.dtype | None = None,
    rank: int = 0,
    world_size: int = 1,
    barrier: Callable[[], None] | None = None,
    max_batch_seconds: float = 240.0,
    max_batch_items: int = 64,
    part_bytes: int = 256 << 20,
) -> Path:
    """Encode every clip of `sources` that the store lacks; return the store directory.

    Args:
        net_or_encoder: a SpeechLM or its (frozen) encoder.
        sources: the sources whose splits to cover (each source's `split` only).
        cache_dir: root of all stores; each encoder fingerprint gets its own subdirectory.
        device: where to run the encoder (default: where its parameters are).
        autocast_dtype: autocast the encoder as training does (bf16 under "bf16-mixed"); part of the key.
        rank, world_size: with several processes each encodes clips i with i mod world_size == rank.
        barrier: called to synchronise processes (required when world_size > 1).
        max_batch_seconds: padded audio seconds per encoder batch.
        max_batch_items: clips per encoder batch.
        part_bytes: approximate size of one part file.
    """
    if world_size > 1 and barrier is None:
        raise ValueError("ensure_feature_cache with world_size > 1 needs a barrier to synchronise ranks")
    sync = barrier or (lambda: None)
    encoder = _encoder_of(net_or_encoder)
    device = torch.device(device) if device is not None else next(encoder.parameters()).device
    fingerprint, settings = encoder_fingerprint(encoder, autocast_dtype)
    spec = encoder.feature_spec()
    store_dir = init_store(Path(cache_dir) / fingerprint[:16], fingerprint, encoder.hidden_size,
                           spec.sample_rate, settings)
    wanted = _pending_clips(sources)
    sync()  # every rank sees the store as it was before anyone writes
    missing = sorted(set(wanted) - FeatureStore(store_dir).known())
    share = [wanted[d] for d in missing[rank::world_size]]
    if share:
        was_training = encoder.training
        encoder.train(False)
        try:
            n = _encode_share(encoder, share, store_dir, device, autocast_dtype, max_batch_seconds,
                              max_batch_items, part_bytes)
        finally:
            encoder.train(was_training)
        log.info("feature cache %s: encoded %d clips (rank %d of %d)", store_dir, n, rank, world_size)
    sync()
    still = set(wanted) - FeatureStore(store_dir).known()
    if still:
        raise RuntimeError(f"feature cache {store_dir} still lacks {len(still)} clips after filling; "
                           "another process may have failed while encoding its share")
    return store_dir


def fill_for_module(module, datamodule) -> Path:
    """Fill the datamodule's cache with the module's encoder on the trainer's device and attach it.

    Called by callbacks/encoder_cache.py at setup: builds the network if needed, encodes on the strategy's
    root device under the run's autocast (bf16-mixed -> bf16), every rank its share.
    """
    module.configure_model()
    trainer = module.trainer
    device = trainer.strategy.root_device
    encoder = module.net.encoder.to(device)
    specs = [s for stage in ("train", "val", "test") for s in datamodule.specs[stage]]
    autocast = AUTOCAST_BY_PRECISION.get(str(trainer.precision))  # encode exactly as the training forward does
    path = ensure_feature_cache(encoder, specs, datamodule.feature_cache, device=device, autocast_dtype=autocast,
                                rank=trainer.global_rank, world_size=trainer.world_size,
                                barrier=trainer.strategy.barrier)
    datamodule.attach_feature_store(path)
    return path
