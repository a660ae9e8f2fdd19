"""The LightningModule: one shared step for train/val/test around a plain `SpeechLM`.

Precision policy: on CPU everything is fp32. On GPU the frozen base weights are cast to bf16 while the
trained parts (projector, LoRA adapters, fully trained components) and the optimiser stay fp32; run the
Trainer with `precision: bf16-mixed` so matmuls autocast to bf16.
Checkpoints hold only the trained parameters (see `on_save_checkpoint`), plus Lightning's optimiser,
scheduler, loop and datamodule state.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy, ModelParallelStrategy
from lightning.pytorch.utilities import rank_zero_warn

from paralm.audio import AudioTokenSpec
from paralm.data.batch import Batch
from paralm.data.source_metrics import StageSourceLosses
from paralm.model.config import SpeechLMConfig
from paralm.model.llm import build_tokenizer
from paralm.model.packing import shares_rows
from paralm.model.speech_lm import SpeechLM, audio_token_spec_for
from paralm.optim import OptimConfig, build_optimizer
from paralm.perf.chunked_ce import IGNORE_INDEX, chunked_token_losses

# Strategies that shard the LLM's parameters: their wrappers gather weights in the LLM's own forward, which the
# packed loss bypasses (it calls the decoder and the LM head separately).
SHARDED_STRATEGIES = (FSDPStrategy, ModelParallelStrategy, DeepSpeedStrategy)

# Frozen parts stay in eval during fit on purpose (see SpeechLM.train); Lightning warns about any such module.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")


@dataclass
class GenerationConfig:
    """Decoding settings for `generate()` (evaluation and the judge callback).

    Args:
        max_new_tokens: upper bound on generated tokens per answer.
        do_sample: sample instead of greedy decoding.
        temperature: sampling temperature (used when do_sample).
        top_p: nucleus sampling mass (used when do_sample).
    """

    max_new_tokens: int = 48
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0


@dataclass
class RuntimeConfig:
    """How the model runs.

    Args:
        frozen_dtype: dtype of frozen base weights: auto (bf16 on GPU, fp32 on CPU) | bf16 | fp32.
        gradient_checkpointing: recompute activations in the backward pass (less memory, about a third slower).
        compile: wrap the LLM forward with torch.compile.
        chunked_ce: compute the loss in chunks of this many positions per row, recomputed in backward and skipped
            where a chunk holds no answer token (0 = at once; saves memory on large vocabularies).
        packed_loss: take the loss on pad-free rows with the LM head on answer positions only
            (paralm/model/packing.py): the padded path's values up to rounding, at a fraction of the cost.
            Checked against the padded path on the first batch that packs two samples into one row (a mismatch,
            e.g. an LLM whose attention ignores restarting position ids, warns and falls back); not used with
            `compile` or under sharded strategies (FSDP).
        loss_norm: how the training loss is normalised (see LOSS_NORMS): global_tokens (sum over answer tokens
            / answer tokens of all ranks; DDP's gradient average then equals the one-process gradient exactly) |
            rank_tokens (token mean within each rank) | sample_mean (mean of per-sample token means).
    """

    frozen_dtype: str = "auto"
    gradient_checkpointing: bool = False
    compile: bool = False
    chunked_ce: int = 0
    packed_loss: bool = True
    loss_norm: str = "global_tokens"

    def __post_init__(self) -> None:
        if self.loss_norm not in LOSS_NORMS:
            raise ValueError(f"runtime.loss_norm={self.loss_norm!r} is not valid; choose one of: {', '.join(LOSS_NORMS)}")


def token_losses(logits: torch.Tensor, labels: torch.Tensor, chunk: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample summed next-token loss and answer-token count. (B, L, V), (B, L) -> (B,), (B,).

    chunk > 0: per-row chunks of `chunk` positions, recomputed in backward, chunks without answer tokens
    skipped (paralm/perf/chunked_ce.py): the same values with a fraction of the memory."""
    shift_labels = labels[:, 1:]
    mask = shift_labels != IGNORE_INDEX
    if chunk:
        per_token = chunked_token_losses(logits, labels, chunk)
    else:
        shift_logits = logits[:, :-1].float()
        flat_logits = shift_logits.reshape(-1, shift_logits.shape[-1])
        per_token = F.cross_entropy(flat_logits, shift_labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none")
    per_token = per_token.view_as(shift_labels) * mask
    return per_token.sum(dim=1), mask.sum(dim=1)


def _rank_tokens(sums: torch.Tensor, counts: torch.Tensor, reduce_sum, world: int) -> torch.Tensor:
    return sums.sum() / counts.sum().clamp(min=1)


def _global_tokens(sums: torch.Tensor, counts: torch.Tensor, reduce_sum, world: int) -> torch.Tensor:
    # DDP averages gradients over ranks, so each rank scales by world / global tokens: the average is then
    # (sum of all ranks' token losses) / (all answer tokens), the one-process token mean of the global batch.
    total = reduce_sum(counts.sum().to(sums.dtype))
    return sums.sum() * world / total.clamp(min=1)


def _sample_mean(sums: torch.Tensor, counts: torch.Tensor, reduce_sum, world: int) -> torch.Tensor:
    # exact under DDP when every rank holds the same number of samples (fixed batch_size plans)
    return (sums / counts.clamp(min=1)).mean()


# name -> fn(per-sample loss sums (B,), answer-token counts (B,), all-ranks sum, world size) -> scalar loss
LOSS_NORMS = {"global_tokens": _global_tokens, "rank_tokens": _rank_tokens, "sample_mean": _sample_mean}


class SpeechLMModule(pl.LightningModule):
    """Encoder -> projector -> LLM with LoRA, trained on answer tokens only.

    Args:
        model: the SpeechLM architecture (encoder, projector, LLM, trainability per component).
        optim: optimiser and learning-rate schedule.
        generation: decoding settings used by `generate()`.
        runtime: precision, gradient checkpointing, compile.
        init_from: a folder written by `paralm export`: start from its trained weights (the configured model
            must match it); how `paralm predict` answers from an export (see paralm/predict.py).
    """

    def __init__(
        self,
        model: SpeechLMConfig,
        optim: OptimConfig = OptimConfig(),  # noqa: B008 (jsonargparse shows these defaults in --help)
        generation: GenerationConfig = GenerationConfig(),  # noqa: B008 (jsonargparse shows these defaults in --help)
        runtime: RuntimeConfig = RuntimeConfig(),  # noqa: B008 (jsonargparse shows these defaults in --help)
        init_from: str | None = None,
    ) -> None:
        super().__init__()
        self.model_config = model
        self.optim_config = optim
        self.generation_config = generation
        self.runtime = runtime
        self.init_from = init_from  # not a hyperparameter: a checkpoint already holds the weights it gave
        self._runtime_applied = False
        self._packed_checked = False  # the packed loss is compared with the padded one once, on the first batch
        # that packs two samples into one row
        self._packed_refused = False  # ... and not used again after a mismatch (the config is left as given)
        # Plain dicts only: checkpoints must load with weights_only=True.
        self.save_hyperparameters({"model": asdict(model), "optim": asdict(optim),
                                   "generation": asdict(generation), "runtime": asdict(runtime)})
        self.tokenizer = build_tokenizer(model.llm, model.placeholder_token)
        self.audio_token_spec: AudioTokenSpec = audio_token_spec_for(model, self.tokenizer)
        self.net: SpeechLM | None = None
        self.strict_loading = False  # the trained subset is loaded strictly in on_load_checkpoint
        self.source_losses = StageSourceLosses()  # one process, names as they come; setup() sets a run's

    # ---- model life cycle -------------------------------------------------------------------------
    def configure_model(self) -> None:
        """Build (and load) the network lazily so that any config parses without its model folders; then
        apply the runtime settings once (also to a network set from outside, e.g. by paralm predict)."""
        if self.net is None:
            if self.init_from:
                from paralm.predict import check_same_tokenizer, load_for_prediction

                self.net = load_for_prediction(self.init_from, self.model_config).model
                check_same_tokenizer(self.net, self.tokenizer)
            else:
                self.net = SpeechLM.from_config(self.model_config, tokenizer=self.tokenizer)
        if self._runtime_applied:
            return
        self._runtime_applied = True
        dtype = self.runtime.frozen_dtype
        on_gpu = self.device.type == "cuda" or (self._trainer is not None and self.trainer.strategy.root_device.type == "cuda")
        if dtype == "bf16" or (dtype == "auto" and on_gpu):
            self.net.cast_frozen(torch.bfloat16)
        if self.runtime.gradient_checkpointing:
            self.net.enable_gradient_checkpointing()
        if self.runtime.compile:
            self.net.llm.forward = torch.compile(self.net.llm.forward)

    def on_fit_start(self) -> None:
        self.train()  # Lightning >= 2.2 keeps modes as found; SpeechLM.train sets them per trained parameter
        if self.global_rank == 0:
            print(self.net.trainable_report())

    # ---- the shared step ----------------------------------------------------------------------------
    def forward(self, batch: Batch) -> torch.Tensor:
        return self.net(batch.input_ids, batch.attention_mask, batch.features, batch.feature_lengths,
                        encoder_states=batch.encoder_states, encoder_lengths=batch.encoder_lengths)

    def _step(self, batch: Batch, stage: str) -> torch.Tensor:
        sums, counts = self.token_losses(batch)
        real = ~batch.is_pad.to(sums.device)  # (B,) filler items (see MixtureDataModule) never count
        sums, counts = sums * real, counts * real
        n_tokens = counts.sum().clamp(min=1)
        loss = sums.sum() / n_tokens
        # evaluation: weighted by answer tokens, so the epoch value is the token mean (as loss_<source> is)
        weight = len(batch) if stage == "train" else int(counts.sum())
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=weight, sync_dist=stage != "train")
        if stage == "train" and self._trainer is not None:  # eval ranks may run unequal batch counts: no collectives
            strategy = self.trainer.strategy
            loss = LOSS_NORMS[self.runtime.loss_norm](sums, counts, lambda t: strategy.reduce(t, reduce_op="sum"),
                                                      self.trainer.world_size)
        self.source_losses.update(stage, batch.sources, sums.detach(), counts.detach())
        return loss

    def token_losses(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample summed answer-token loss (B,) and answer-token count (B,): packed when allowed."""
        if not self._packed_allowed():
            return self._padded_losses(batch)
        sums, counts = self._packed_losses(batch)
        if self._packed_checked or not shares_rows(batch.attention_mask):
            return sums, counts  # checked already, or a batch that packs no two samples together proves nothing
        self._packed_checked = True
        mismatch = self._packed_mismatch(batch)
        if mismatch is None:
            return sums, counts
        self._packed_refused = True
        rank_zero_warn(f"runtime.packed_loss: the packed loss disagrees with the padded one on a packed batch "
                       f"({mismatch}); this LLM ignores restarting position ids or changes its logits after the "
                       f"LM head. Using the padded loss for this run.")
        return self._padded_losses(batch)

    def _padded_losses(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        return token_losses(self(batch), batch.labels, self.runtime.chunked_ce)

    def _packed_losses(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net.packed_token_losses(
            batch.input_ids, batch.attention_mask, batch.labels, batch.features, batch.feature_lengths,
            encoder_states=batch.encoder_states, encoder_lengths=batch.encoder_lengths)

    def _packed_mismatch(self, batch: Batch) -> str | None:
        """Both losses of `batch` without dropout, gradients or a draw from the run's random streams (the
        training step's own dropout masks differ between layouts); None when they agree."""
        was_training = self.net.training
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=devices):
                self.net.train(False)
                sums, counts = self._packed_losses(batch)
                ref_sums, ref_counts = self._padded_losses(batch)
        finally:
            self.net.train(was_training)
        precise = self.net.llm.dtype == torch.float32 and not torch.is_autocast_enabled(sums.device.type)
        tolerance = 1e-3 if precise else 3e-2
        if torch.equal(counts, ref_counts) and torch.allclose(sums, ref_sums, rtol=tolerance, atol=tolerance):
            return None
        return (f"per-sample sums {sums.tolist()[:4]} vs {ref_sums.tolist()[:4]}, counts {counts.tolist()[:4]} vs "
                f"{ref_counts.tolist()[:4]}")

    def _packed_allowed(self) -> bool:
        if not self.runtime.packed_loss or self.runtime.compile or self._packed_refused:
            return False
        if self._trainer is None:
            return True
        return not isinstance(self.trainer.strategy, SHARDED_STRATEGIES)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch: Batch, batch_idx: int) -> list[str]:
        """Answers of a generation batch (`paralm predict`; paralm/predict.py writes them as rows)."""
        return self.generate(batch)

    # ---- per-source losses (paralm/data/source_metrics.py): fed by _step, logged at each epoch end
    def setup(self, stage: str) -> None:
        self.source_losses = StageSourceLosses.for_trainer(self.trainer)  # this run's names, ranks, device

    def on_train_epoch_end(self) -> None:
        self.log_dict(self.source_losses.epoch_end("train"), rank_zero_only=True, sync_dist=False)

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.source_losses.epoch_end("val"), rank_zero_only=True, sync_dist=False)

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.source_losses.epoch_end("test"), rank_zero_only=True, sync_dist=False)

    def configure_callbacks(self) -> list[pl.Callback]:
        """Frozen-encoder states are encoded once, before any loader exists (callbacks/encoder_cache.py);
        returned here so that every Trainer running this module fills the cache, not only the CLI's."""
        from callbacks.encoder_cache import EncoderCacheFill

        return [EncoderCacheFill()]

    # ---- optimisation ---------------------------------------------------------------------------------
    def configure_optimizers(self):
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 1000
        opt, sched = build_optimizer(self.net, self.optim_config, max(1, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ---- checkpoints hold only what was trained -------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["state_dict"] = {f"net.{k}": v.detach().cpu() for k, v in self.net.trainable_state_dict().items()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.configure_model()
        state = {k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items()}
        self.net.load_trainable_state_dict(state, strict=True)
        checkpoint["state_dict"] = {}  # already loaded, strictly, above

    # ---- evaluation -----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, batch: Batch, **overrides) -> list[str]:
        """Answers for a generation batch (left-padded prompts without answers). Returns B strings."""
        cfg = {**asdict(self.generation_config), **overrides}
        was_training = self.net.training
        self.net.eval()
        try:
            return self.net.generate(batch.input_ids, batch.attention_mask, batch.features, batch.feature_lengths,
                                     encoder_states=batch.encoder_states, encoder_lengths=batch.encoder_lengths, **cfg)
        finally:
            self.net.train(was_training)
