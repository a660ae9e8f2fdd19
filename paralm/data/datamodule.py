"""The mixture DataModule: named sources -> seeded per-rank plan -> batches, resumable mid-epoch.

Training: each epoch, every rank computes the same global plan from (seed, epoch) (see
paralm/data/plan.py: mixture draw, duration buckets, shuffled batch order, equal batches per rank) and
reads its own batches by byte offset in dataloader workers. The order does not depend on num_workers.

Evaluation (val / test / generation): every QA item of the eval sources exactly once across ranks,
in a fixed order; ranks may differ by one batch (no DistributedSampler padding duplicates), so log
eval metrics per epoch (`on_step=False`), not per step. A rank left without any item (fewer items
than ranks) gets one filler batch whose items carry `meta["is_pad"] = True`; metrics skip those.

Resume: `state_dict()` = {epoch, batches consumed in this epoch, skip counters}; the position is read
from the trainer's batch progress when the checkpoint is written, so batches that were fetched ahead
but not trained on are not counted. Lightning calls `load_state_dict` before it asks for the train
loader, and the next iteration of that epoch starts at the saved position.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import torch
import torch.distributed as dist
from lightning.pytorch import LightningDataModule
from lightning.pytorch.trainer.states import TrainerFn

from paralm.audio import AudioTokenSpec
from paralm.data.batch import Batch
from paralm.data.collate import Collator
from paralm.data.feature_store import CachedSampleReader, FeatureStore
from paralm.data.foreign.stream_loader import StreamLoader, check_stream_modes
from paralm.data.loader import AudioSwapReader, MetadataSwapReader, PlanDataset, PlanLoader, SkipTracker
from paralm.data.plan import BatchingConfig, TrainPlanner, eval_plan
from paralm.data.prompts import PromptConfig
from paralm.data.reader import SampleReader
from paralm.data.sources import LoadedSource, SourceSpec, load_sources

log = logging.getLogger(__name__)
EVAL_STAGES = ("val", "test")


class MixtureDataModule(LightningDataModule):
    """Train on a weighted mixture of named sources; evaluate every item of the eval sources once.

    Args:
        train_sources: training sources (shard index dir, kind general|implicit, weight, split).
        val_sources: validation sources (every QA item once per validation run).
        test_sources: test sources.
        implicit_ratio: probability mass of implicit sources (general ones get the rest); None uses the
            normalised source weights as they are.
        train_prompt: prompt mode and metadata source for training (explicit training should read
            out-of-fold predictions, e.g. metadata="pred:ser@oof").
        eval_prompt: prompt mode and metadata source for validation, test and generation
            (metadata="gold" is the oracle ablation).
        batch_size: most items per batch (None: only max_batch_seconds limits batches).
        max_batch_seconds: budget of padded audio seconds per batch (items x longest clip).
        bucket_window: clips are sorted by duration within windows of this many batches.
        num_workers: dataloader worker processes per rank.
        seed: plan seed; the same seed gives the same order on every run and worker count.
        samples_per_epoch: training items drawn per epoch over all ranks (None: all training items).
        min_duration: clips shorter than this (seconds) are skipped and counted.
        max_duration: clips longer than this (seconds) are skipped and counted (None: no limit).
        max_skip_rate: stop the run when more than this share of attempted samples was skipped.
        skip_log_path: jsonl file listing skipped keys with shard and reason (rank r > 0 writes
            `<stem>.rank<r><suffix>`); None: not written.
        feature_cache: directory of cached encoder states for a frozen encoder (computed once, reused by
            every run with the same encoder and feature settings; filled before fit by the LightningModule);
            None: encode audio online.
        predict_split: the eval split `paralm predict` answers (val | test).
    """

    def __init__(
        self,
        train_sources: list[SourceSpec] | None = None,
        val_sources: list[SourceSpec] | None = None,
        test_sources: list[SourceSpec] | None = None,
        implicit_ratio: float | None = None,
        train_prompt: PromptConfig | None = None,
        eval_prompt: PromptConfig | None = None,
        batch_size: int | None = 8,
        max_batch_seconds: float | None = None,
        bucket_window: int = 64,
        num_workers: int = 2,
        seed: int = 0,
        samples_per_epoch: int | None = None,
        min_duration: float = 0.0,
        max_duration: float | None = 30.0,
        max_skip_rate: float = 0.05,
        skip_log_path: str | None = None,
        feature_cache: str | None = None,
        predict_split: str = "test",
    ) -> None:
        super().__init__()
        self.specs = {
            "train": list(train_sources or []),
            "val": list(val_sources or []),
            "test": list(test_sources or []),
        }
        self.implicit_ratio = implicit_ratio
        self.train_prompt = train_prompt or PromptConfig()
        self.eval_prompt = eval_prompt or PromptConfig()
        self.batching = BatchingConfig(batch_size, max_batch_seconds, bucket_window)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.samples_per_epoch = samples_per_epoch
        self.min_duration = float(min_duration)
        self.max_duration = max_duration
        self.max_skip_rate = float(max_skip_rate)
        self.skip_log_path = skip_log_path
        self.feature_cache = feature_cache
        if predict_split not in EVAL_STAGES:
            raise ValueError(f"predict_split={predict_split!r} is not valid; choose one of: {', '.join(EVAL_STAGES)}")
        self.predict_split = predict_split
        self._feature_store: FeatureStore | None = None
        self.tokenizer = None
        self.audio_spec: AudioTokenSpec | None = None
        self._sources: dict[str, list[LoadedSource]] = {}
        self._planner: TrainPlanner | None = None
        self._trackers: dict[str, SkipTracker] = {}
        self._train_loader: PlanLoader | None = None
        self._pending_resume: tuple[int, int] | None = None
        self.last_plan_counts: dict[str, int] = {}
        check_stream_modes(self.specs, implicit_ratio, samples_per_epoch, batch_size, max_batch_seconds,
                           feature_cache)

    # --- wiring -------------------------------------------------------------------------------
    def attach(self, tokenizer, audio_spec: AudioTokenSpec) -> None:
        """Give the data layer the tokenizer and audio-token spec (built by the CLI from the model config)."""
        self.tokenizer = tokenizer
        self.audio_spec = audio_spec

    def attach_feature_store(self, path: str | Path) -> None:
        """Read encoder states from this store (the one `ensure_feature_cache` returned for the model)."""
        self._feature_store = FeatureStore(path)

    @property
    def source_names(self) -> list[str]:
        """Every configured source name (train, val, test; first occurrence order), the same on all ranks,
        so per-source metrics can be registered up front and all-reduced with one fixed shape."""
        return list(dict.fromkeys(s.name for stage in ("train", "val", "test") for s in self.specs[stage]))

    def _require_attached(self) -> None:
        if self.tokenizer is None or self.audio_spec is None:
            raise RuntimeError(
                "MixtureDataModule.attach(tokenizer, audio_spec) must be called before loaders"
            )

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def sources(self, stage: str) -> list[LoadedSource]:
        """Loaded sources of "train", "val" or "test" (indexes are read once)."""
        if stage not in self.specs:
            raise ValueError(f"unknown stage {stage!r}; valid: {', '.join(self.specs)}")
        if stage not in self._sources:
            self._sources[stage] = load_sources(self.specs[stage]) if self.specs[stage] else []
        return self._sources[stage]

    def tracker(self, stage: str) -> SkipTracker:
        """Skip counters of one stage (train counters are saved in checkpoints)."""
        if stage not in self._trackers:
            self._trackers[stage] = SkipTracker(self.max_skip_rate)
        tracker = self._trackers[stage]
        tracker.skip_log_path = self._skip_path(stage)  # the rank is known once a trainer is attached
        return tracker

    def _skip_path(self, stage: str) -> Path | None:
        if not self.skip_log_path:
            return None
        path, (rank, _) = Path(self.skip_log_path), self._rank()
        suffix = (f".{stage}" if stage != "train" else "") + (f".rank{rank}" if rank else "")
        return path.with_name(f"{path.stem}{suffix}{path.suffix}")

    def _readers(self, sources: list[LoadedSource]) -> list[SampleReader]:
        rate, low, high = self.audio_spec.features.sample_rate, self.min_duration, self.max_duration
        readers = [SampleReader(s.root, sample_rate=rate, min_duration=low, max_duration=high) for s in sources]
        if self.feature_cache is None:
            return readers
        if self._feature_store is None:
            raise RuntimeError("feature_cache is set but no store is attached; callbacks.EncoderCacheFill (which "
                               "SpeechLMModule adds to its Trainer) fills it at setup, or call "
                               "paralm.features_cache.ensure_feature_cache and attach_feature_store")
        return [CachedSampleReader(r, self._feature_store) for r in readers]

    # --- training -----------------------------------------------------------------------------
    def planner(self) -> TrainPlanner:
        if self._planner is None:
            pools = [s.pool() for s in self.sources("train")]
            self._planner = TrainPlanner(
                pools, self.batching, self.seed, self.samples_per_epoch, self.implicit_ratio
            )
        return self._planner

    def _train_plan(self, epoch: int):
        rank, world = self._rank()
        planner = self.planner()
        plan = planner.epoch_plan(epoch)
        self.last_plan_counts = dict(plan.source_counts)
        probs = {p.name: round(float(q), 4) for p, q in zip(planner.pools, planner.probs, strict=True)}
        if rank == 0:
            log.info(
                "data plan epoch %d: drawn per source %s (probabilities %s), %d batches per rank x %d ranks",
                epoch,
                plan.source_counts,
                probs,
                planner.batches_per_rank(world),
                world,
            )
        return planner.rank_plan(epoch, rank, world)

    def train_dataloader(self) -> PlanLoader:
        self._require_attached()
        if not self.specs["train"]:
            raise ValueError("train_dataloader needs train_sources; none are configured")
        if self.specs["train"][0].mode == "streaming":
            return self._streaming_loader()
        sources = self.sources("train")
        collator = Collator(self.tokenizer, self.audio_spec, self.train_prompt)
        dataset_fn = partial(PlanDataset, sources=sources, readers=self._readers(sources), collator=collator)
        _, world = self._rank()
        loader = PlanLoader(
            self._train_plan,
            self.planner().batches_per_rank(world),
            dataset_fn,
            self.num_workers,
            self.tracker("train"),
        )
        if self._pending_resume is not None:
            loader.sampler.resume(*self._pending_resume)
            self._pending_resume = None
        self._train_loader = loader
        return loader

    def _streaming_loader(self) -> StreamLoader:
        """A `mode: streaming` train source (paralm/data/foreign/stream_loader.py; weaker guarantees)."""
        rank, world = self._rank()
        loader = StreamLoader(
            self.specs["train"][0], Collator(self.tokenizer, self.audio_spec, self.train_prompt),
            self.tracker("train"), self.batching.batch_size, self.samples_per_epoch, rank, world,
            self.seed, self.num_workers, self.audio_spec.features.sample_rate,
            self.min_duration, self.max_duration)
        if self._pending_resume is not None:
            loader.sampler.resume(*self._pending_resume)
            self._pending_resume = None
        self._train_loader = loader
        return loader

    # --- evaluation ---------------------------------------------------------------------------
    def eval_dataloader(
        self, stage: str = "val", for_generation: bool = False, shuffle_audio_seed: int | None = None,
        permute_metadata_seed: int | None = None,
    ) -> PlanLoader:
        """Every QA item of the stage's sources once across ranks (see the module docstring).

        shuffle_audio_seed: when set, every clip keeps its key, metadata and questions but is given
        another clip's audio of the same source (seeded pairing, see `AudioSwapReader`).
        permute_metadata_seed: when set, the explicit metadata block shows another clip's cues (own audio
        and gold labels kept; see `MetadataSwapReader`): the metadata-reliance control.
        """
        if stage not in EVAL_STAGES:
            raise ValueError(f"unknown eval stage {stage!r}; valid: {', '.join(EVAL_STAGES)}")
        self._require_attached()
        sources = self.sources(stage)
        rank, world = self._rank()
        batches = eval_plan([s.pool() for s in sources], self.batching, rank, world)
        collator = Collator(self.tokenizer, self.audio_spec, self.eval_prompt, for_generation=for_generation)
        readers = self._readers(sources)
        if shuffle_audio_seed is not None:
            readers = [AudioSwapReader(r, s.rows, shuffle_audio_seed) for r, s in zip(readers, sources, strict=True)]
        if permute_metadata_seed is not None:
            readers = [MetadataSwapReader(r, s.rows, permute_metadata_seed)
                       for r, s in zip(readers, sources, strict=True)]
        dataset_fn = partial(PlanDataset, sources=sources, readers=readers, collator=collator, per_clip=True)
        return PlanLoader(
            lambda _epoch: batches, len(batches), dataset_fn, self.num_workers, self.tracker(stage)
        )

    def val_dataloader(self):
        return self.eval_dataloader("val") if self.specs["val"] else []

    def test_dataloader(self):
        return self.eval_dataloader("test") if self.specs["test"] else []

    def predict_dataloader(self) -> PlanLoader:
        """Generation batches of `predict_split` (every QA item once across ranks) for `paralm predict`."""
        if not self.specs[self.predict_split]:
            raise ValueError(f"paralm predict answers --data.predict_split {self.predict_split}, but no "
                             f"{self.predict_split}_sources are configured")
        return self.generation_dataloader(self.predict_split)

    def generation_dataloader(self, stage: str = "val", shuffle_audio_seed: int | None = None,
                              permute_metadata_seed: int | None = None) -> PlanLoader:
        """Left-padded prompts without answers (references in batch.references), for judge evaluation;
        `shuffle_audio_seed` swaps audio, `permute_metadata_seed` metadata cues between clips (see
        `eval_dataloader`)."""
        return self.eval_dataloader(stage, for_generation=True, shuffle_audio_seed=shuffle_audio_seed,
                                    permute_metadata_seed=permute_metadata_seed)

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        if isinstance(batch, Batch):
            return batch.to(device)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    # --- logging and resume -------------------------------------------------------------------
    def data_stats(self, stage: str = "train") -> dict[str, int]:
        """This rank's counters for logging: seen, delivered, skipped (+ per reason), metadata_missing,
        and rows the shard indexes set aside when loaded (index_skip_<reason>, e.g. duplicate keys)."""
        stats = self.tracker(stage).stats()
        for src in self._sources.get(stage, []):
            for reason, n in src.index_skips.nonzero().items():
                stats[f"index_skip_{reason}"] = stats.get(f"index_skip_{reason}", 0) + n
        return stats

    def _progress(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is not None and trainer.state.fn == TrainerFn.FITTING:
            progress = trainer.fit_loop.epoch_loop.batch_progress.current
            return int(trainer.current_epoch), int(progress.processed)
        if self._train_loader is not None:
            cursor = self._train_loader.sampler
            return cursor.epoch, cursor.position
        return self._pending_resume or (0, 0)

    def state_dict(self) -> dict:
        """{epoch, batches_consumed, seed, skips (one entry per rank)}; called on every rank."""
        epoch, consumed = self._progress()
        local = self.tracker("train").state_dict()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            per_rank: list = [None] * dist.get_world_size()
            dist.all_gather_object(per_rank, local)
        else:
            per_rank = [local]
        return {
            "epoch": epoch,
            "batches_consumed": consumed,
            "seed": self.seed,
            "world_size": len(per_rank),
            "skips": per_rank,
        }

    def load_state_dict(self, state: dict) -> None:
        if int(state.get("seed", self.seed)) != self.seed:
            log.warning(
                "resuming with seed %s but the checkpoint's plan used seed %s: the order changes",
                self.seed,
                state["seed"],
            )
        rank, world = self._rank()
        if int(state.get("world_size", world)) != world:
            log.warning(
                "resuming on %d ranks from a checkpoint written on %s: each rank's plan differs, so the "
                "position in the epoch is only approximate",
                world,
                state["world_size"],
            )
        self.tracker("train").restore(state.get("skips", []), rank, world)
        resume = (int(state["epoch"]), int(state["batches_consumed"]))
        if self._train_loader is not None:
            self._train_loader.sampler.resume(*resume)
        else:
            self._pending_resume = resume
