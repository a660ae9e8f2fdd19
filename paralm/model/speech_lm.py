"""SpeechLM: log-mel -> encoder -> projector -> audio tokens spliced at the placeholder -> LLM -> logits.

A plain nn.Module (no Lightning, no loss). The prompt carries, for each clip, a run of placeholder ids
exactly as long as the clip's audio token count (`AudioTokenSpec.num_tokens`); `embed` replaces that
run with the projector output. Position ids follow the attention mask, so left- and right-padded
batches give every sample the logits it would get alone.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from peft import PeftModel
from torch import nn
from transformers import PreTrainedTokenizerFast

from paralm.audio import AudioTokenSpec
from paralm.model import export as export_io
from paralm.model import packing
from paralm.model.config import SpeechLMConfig
from paralm.model.encoder import SpeechEncoder, build_encoder, encoder_layout
from paralm.model.encoder_base import lengths_mask
from paralm.model.llm import build_tokenizer, load_llm
from paralm.model.projector import Projector, build_projector
from paralm.model.trainable import (
    ENCODER_MODES,
    LLM_MODES,
    PROJECTOR_MODES,
    apply_mode,
    count_params,
    has_trainable,
    set_train_mode,
    silence_frozen_noise,
)

COMPONENTS = ("encoder", "projector", "llm")


def audio_token_spec_for(cfg: SpeechLMConfig, tokenizer: PreTrainedTokenizerFast | None = None) -> AudioTokenSpec:
    """The clip-length -> audio-token mapping, read from config files only (no weights loaded)."""
    layout = encoder_layout(cfg.encoder)
    tok = tokenizer if tokenizer is not None else build_tokenizer(cfg.llm, cfg.placeholder_token)
    return AudioTokenSpec(
        features=layout.features, encoder_convs=layout.convs, chunk_frames=layout.chunk_frames,
        stack=cfg.projector.stack, placeholder_token_id=placeholder_id(tok, cfg.placeholder_token),
        placeholder_token=cfg.placeholder_token,
    )


def placeholder_id(tok: PreTrainedTokenizerFast, placeholder: str) -> int:
    vocab = tok.get_vocab()
    if placeholder not in vocab:
        raise ValueError(f"tokenizer has no {placeholder!r} token; build it with paralm.model.llm.build_tokenizer")
    return int(vocab[placeholder])


def left_align(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's padding to the left (stable, token order kept); a no-op on left-padded input."""
    order = torch.argsort(attention_mask, dim=1, stable=True)
    return input_ids.gather(1, order), attention_mask.gather(1, order)


class SpeechLM(nn.Module):
    """Encoder + projector + LLM with per-component trainability. Build with `from_config`."""

    def __init__(self, cfg: SpeechLMConfig, encoder: SpeechEncoder, projector: Projector, llm: nn.Module,
                 tokenizer: PreTrainedTokenizerFast):
        super().__init__()
        self.config = cfg
        self.encoder = encoder
        self.projector = projector
        self.llm = llm
        self.tokenizer = tokenizer
        self.placeholder_id = placeholder_id(tokenizer, cfg.placeholder_token)
        self._spec = AudioTokenSpec(
            features=encoder.feature_spec(), encoder_convs=encoder.token_convs(), chunk_frames=encoder.chunk_frames,
            stack=cfg.projector.stack, placeholder_token_id=self.placeholder_id,
            placeholder_token=cfg.placeholder_token,
        )
        self.silenced_noise = silence_frozen_noise(self)  # frozen bases stay deterministic in train mode
        self.train(False)

    @classmethod
    def from_config(cls, cfg: SpeechLMConfig, tokenizer: PreTrainedTokenizerFast | None = None) -> SpeechLM:
        """Load or create every component, size the projector from both ends, apply trainability."""
        tok = tokenizer if tokenizer is not None else build_tokenizer(cfg.llm, cfg.placeholder_token)
        placeholder_id(tok, cfg.placeholder_token)  # fail before any weights load
        with torch.random.fork_rng(devices=[]):  # random-init bases are reproducible; the run's RNG is untouched
            torch.manual_seed(cfg.base_init_seed)
            encoder = build_encoder(cfg.encoder)
            llm = load_llm(cfg.llm, tok)
        projector = build_projector(cfg.projector, encoder.hidden_size, llm.get_input_embeddings().embedding_dim)
        apply_mode(ENCODER_MODES, "encoder", encoder.lora_root(), cfg.encoder.trainable, cfg.encoder.lora)
        for param in encoder.fixed_parameters():
            param.requires_grad_(False)
        apply_mode(PROJECTOR_MODES, "projector", projector, cfg.projector.trainable)
        llm = apply_mode(LLM_MODES, "llm", llm, cfg.llm.trainable, cfg.llm.lora)
        return cls(cfg, encoder, projector, llm, tok)

    @classmethod
    def from_export(cls, out_dir: str | Path, cfg: SpeechLMConfig | None = None) -> SpeechLM:
        """Rebuild a model written by `export` (cfg None = the config saved with it)."""
        cfg = cfg if cfg is not None else export_io.read_config(out_dir)
        model = cls.from_config(cfg, tokenizer=export_io.read_tokenizer(out_dir))
        export_io.restore(model, out_dir)
        return model

    def export(self, out_dir: str | Path) -> Path:
        """safetensors of trained parts + peft adapter folder + config + tokenizer (see export.py)."""
        return export_io.write(self, out_dir)

    # ---- audio ----
    def audio_token_spec(self) -> AudioTokenSpec:
        return self._spec

    def _check_counts(self, feature_lengths: torch.Tensor, counts: torch.Tensor) -> None:
        spec = self._spec
        expected = [-(-spec.encoder_frames_from_features(int(n)) // spec.stack) for n in feature_lengths.tolist()]
        if expected != counts.tolist():
            raise RuntimeError(f"encoder+projector gave {counts.tolist()} audio tokens, AudioTokenSpec says {expected}")

    def encode_audio(self, features: torch.Tensor, feature_lengths: torch.Tensor,
                     encoder_states: torch.Tensor | None = None,
                     encoder_lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, T), (B,) -> tokens (B, N, H), counts (B,). Cached `encoder_states` (B, F, D) skip the encoder."""
        if encoder_states is None:
            frames, frame_lengths = self.encoder(features, feature_lengths)
        else:
            if encoder_lengths is None:
                raise ValueError("encoder_states given without encoder_lengths")
            if has_trainable(self.encoder):
                raise ValueError("encoder_states given but the encoder trains; cached states would skip its update")
            frames, frame_lengths = encoder_states, encoder_lengths.to(encoder_states.device)
        dtype = next(self.projector.parameters()).dtype
        tokens, counts = self.projector(frames.to(dtype), frame_lengths)
        if encoder_states is None:
            self._check_counts(feature_lengths, counts)
        return tokens, counts

    # ---- text + audio ----
    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, features: torch.Tensor,
              feature_lengths: torch.Tensor, encoder_states: torch.Tensor | None = None,
              encoder_lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) ids -> inputs_embeds (B, L, H) with each placeholder run replaced, position_ids (B, L)."""
        tokens, counts = self.encode_audio(features, feature_lengths, encoder_states, encoder_lengths)
        text = self.llm.get_input_embeddings()(input_ids)  # (B, L, H)
        is_audio = input_ids == self.placeholder_id
        self._check_runs(is_audio, counts)
        audio = tokens[lengths_mask(counts, tokens.shape[1])].to(text.dtype)  # (sum counts, H), row-major
        embeds = text.masked_scatter(is_audio.unsqueeze(-1), audio)
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        return embeds, position_ids

    @staticmethod
    def _check_runs(is_audio: torch.Tensor, counts: torch.Tensor) -> None:
        runs = is_audio.sum(dim=1)
        positions = torch.arange(is_audio.shape[1], device=is_audio.device)
        first = torch.where(is_audio, positions, is_audio.shape[1]).min(dim=1).values
        last = torch.where(is_audio, positions, -1).max(dim=1).values
        contiguous = (runs == 0) | (last - first + 1 == runs)
        if not torch.equal(runs, counts.to(runs.device)) or not bool(contiguous.all()):
            raise ValueError(
                f"each sample needs one run of placeholder ids as long as its audio token count; "
                f"runs {runs.tolist()} (contiguous {contiguous.tolist()}) vs audio tokens {counts.tolist()}"
            )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, features: torch.Tensor,
                feature_lengths: torch.Tensor, encoder_states: torch.Tensor | None = None,
                encoder_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """-> logits (B, L, V)."""
        embeds, position_ids = self.embed(input_ids, attention_mask, features, feature_lengths,
                                          encoder_states, encoder_lengths)
        out = self.llm(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids,
                       use_cache=False)
        return out.logits

    def packed_token_losses(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                            features: torch.Tensor, feature_lengths: torch.Tensor,
                            encoder_states: torch.Tensor | None = None,
                            encoder_lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample summed next-token loss (B,) fp32 and answer-token count (B,), as `forward` + the padded
        loss give them, computed on pad-free rows with the LM head on answer positions only (packing.py)."""
        embeds, _ = self.embed(input_ids, attention_mask, features, feature_lengths, encoder_states, encoder_lengths)
        plan = packing.pack_plan(attention_mask)
        targets = packing.answer_targets(labels)
        decoder, head = self.decoder_and_head()
        hidden = decoder(inputs_embeds=packing.pack_embeds(embeds, plan), attention_mask=None,
                         position_ids=plan.position, use_cache=False).last_hidden_state
        at_answers = hidden.reshape(-1, hidden.shape[-1])[packing.packed_positions(targets, plan)]
        per_token = F.cross_entropy(head(at_answers).float(), targets.target, reduction="none")
        return packing.per_sample(per_token, targets.sample, input_ids.shape[0])

    def base_llm(self) -> nn.Module:
        """The transformers causal LM, through a peft wrapper if any (LoRA layers stay inside it)."""
        return self.llm.get_base_model() if isinstance(self.llm, PeftModel) else self.llm

    def decoder_and_head(self) -> tuple[nn.Module, nn.Module]:
        """The LLM's transformer body (hidden states) and its LM head."""
        base = self.base_llm()
        return base.get_decoder(), base.get_output_embeddings()

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, features: torch.Tensor,
                 feature_lengths: torch.Tensor, max_new_tokens: int = 64, do_sample: bool = False,
                 temperature: float = 1.0, top_p: float = 1.0, encoder_states: torch.Tensor | None = None,
                 encoder_lengths: torch.Tensor | None = None) -> list[str]:
        """Answers for a batch of prompts (ending in the generation prompt); new tokens only, specials skipped."""
        input_ids, attention_mask = left_align(input_ids, attention_mask)
        was_training = self.training
        self.train(False)
        try:
            embeds, _ = self.embed(input_ids, attention_mask, features, feature_lengths,
                                   encoder_states, encoder_lengths)
            sampling = dict(temperature=temperature, top_p=top_p, top_k=0) if do_sample else {}
            new_ids = self.llm.generate(
                inputs_embeds=embeds, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                do_sample=do_sample, eos_token_id=self._eos_ids(), pad_token_id=self.tokenizer.pad_token_id,
                suppress_tokens=[self.placeholder_id], **sampling,
            )
        finally:
            self.train(was_training)
        return self.tokenizer.batch_decode(new_ids, skip_special_tokens=True)

    def _eos_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(self.llm.generation_config, "eos_token_id", None)
        ids.update(configured if isinstance(configured, list) else [configured])
        return sorted(i for i in ids if i is not None)

    # ---- training state ----
    def train(self, mode: bool = True) -> SpeechLM:
        """Train mode only on the path to trained parameters (LoRA inside a frozen LLM included, so HF
        gradient checkpointing runs); frozen parts, and dropout outside trained weights, stay in eval.
        See paralm.model.trainable.set_train_mode."""
        set_train_mode(self, mode)
        return self

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only parameters with requires_grad, under their module names (stable across runs)."""
        return {name: p.detach() for name, p in self.named_parameters() if p.requires_grad}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True) -> None:
        """Copy trained tensors in; strict: the names must be exactly the trainable set."""
        params = dict(self.named_parameters())
        trainable = {n for n, p in params.items() if p.requires_grad}
        unknown = sorted(set(state) - set(params))
        missing = sorted(trainable - set(state))
        if unknown or (strict and (missing or set(state) - trainable)):
            raise KeyError(f"trainable state mismatch: unknown {unknown[:5]}, missing {missing[:5]}, "
                           f"not trainable {sorted(set(state) - trainable - set(unknown))[:5]}")
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value)

    def trainable_report(self) -> str:
        """One line per component: trainable / total parameters."""
        lines = []
        for name in (*COMPONENTS, None):
            module = getattr(self, name) if name else self
            trained, total = count_params(module)
            lines.append(f"{name or 'total':<10} {trained:>14,} / {total:>14,} trainable ({100 * trained / max(total, 1):.2f}%)")
        return "\n".join(lines)

    def enable_gradient_checkpointing(self) -> None:
        """Recompute activations in backward for the LLM (and a trained encoder): less memory, more time."""
        targets = [self.base_llm()] + ([self.encoder.model] if has_trainable(self.encoder) else [])
        for module in targets:
            if not getattr(module, "supports_gradient_checkpointing", False):
                continue
            enable = getattr(module, "activation_checkpointing_enable", None)  # transformers >= 5.x name
            if enable is not None:
                enable({"use_reentrant": False})
            else:
                module.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    def cast_frozen(self, dtype: torch.dtype = torch.bfloat16) -> None:
        """Frozen base weights to `dtype` (GPU memory); trained parts stay fp32. Run under autocast."""
        for param in self.parameters():
            if not param.requires_grad:
                param.data = param.data.to(dtype)
