"""FLOPs of one SpeechLM step, split into frozen and trained parts, for throughput and MFU.

Why count instead of profiling: telemetry needs the number on every logged step at no cost, and for a
model that is mostly frozen the usual "6 x parameters x tokens" is wrong by a factor of up to 3 (a
frozen encoder costs 2 x N x frames, a frozen LLM base behind a trained projector 4 x N x tokens:
forward plus the input gradient, no weight gradient; LoRA and the projector 6 x N). The per-op rules
live in paralm/perf/flop_ops.py; this module supplies the position counts from a `Batch`.

Two views of the same step:
    padded=True   the shapes the kernels run on (rows padded to the batch maximum): what
                  torch.utils.flop_counter.FlopCounterMode counts (a test holds the two within 5 %)
    padded=False  real lengths only: useful model FLOPs, the numerator of MFU
The LM head is priced on every row position in the padded view (the padded loss runs it there) and on
answer-predicting positions only in the useful view: only their logits reach the loss, and the packed loss
(`runtime.packed_loss`, paralm/model/packing.py) computes nothing else. Attention counts full S x S scores
(no causal halving), as FlopCounterMode does. Recomputation under gradient checkpointing is not counted
(model FLOPs, not hardware FLOPs).

Shapes read from the batch: features (B, C, T) + feature_lengths (B,), or encoder_lengths (B,) when
cached encoder states are used (the encoder then costs nothing); attention_mask (B, L); the answer-token
count (`Batch.num_answer_tokens`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from paralm.audio import AudioTokenSpec
from paralm.perf.flop_ops import AttentionOp, MatmulOp, component_ops

COMPONENTS = ("encoder", "projector", "llm")
HEAD = "answers"  # the position count of the LM head (see the module docstring)


@dataclass
class StepFlops:
    """FLOPs of one step.

    Args:
        frozen: matmuls with frozen weights (forward, plus input gradients where a gradient flows).
        trained: matmuls with trained weights (forward + weight gradient + input gradient).
        attention: weightless score/value matmuls (forward, plus backward where a gradient flows).
        by_component: total per component (encoder, projector, llm).
    """

    frozen: float = 0.0
    trained: float = 0.0
    attention: float = 0.0
    by_component: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COMPONENTS, 0.0))

    @property
    def total(self) -> float:
        return self.frozen + self.trained + self.attention

    def add(self, other: StepFlops) -> StepFlops:
        parts = {k: self.by_component.get(k, 0.0) + other.by_component.get(k, 0.0) for k in COMPONENTS}
        return StepFlops(self.frozen + other.frozen, self.trained + other.trained,
                         self.attention + other.attention, parts)

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        out = {f"{prefix}total": self.total, f"{prefix}frozen": self.frozen,
               f"{prefix}trained": self.trained, f"{prefix}attention": self.attention}
        out.update({f"{prefix}{k}": v for k, v in self.by_component.items()})
        return out


@dataclass
class Positions:
    """How many positions each op family runs over in one step (sums over rows).

    Args:
        counts: "frames", "conv<i>", "tokens", "llm", "answers" (where the LM head runs) -> positions.
        squares: "frames", "llm" -> sum over sequences of length^2 (attention).
    """

    counts: dict[str, int] = field(default_factory=dict)
    squares: dict[str, int] = field(default_factory=dict)


def _encoder_rows(spec: AudioTokenSpec, lengths: list[int], width: int, padded: bool) -> list[int]:
    """Feature frames of every row the encoder runs (long clips split into chunks)."""
    chunk = spec.chunk_frames
    if chunk <= 0 or width <= chunk:
        return [width] * len(lengths) if padded else list(lengths)
    rows = []
    for n in lengths:
        pieces = max(1, -(-n // chunk))
        rows += [min(width, chunk)] * pieces if padded else [min(chunk, n - j * chunk) for j in range(pieces)]
    return rows


def batch_positions(spec: AudioTokenSpec, feature_lengths: list[int], feature_width: int,
                    encoder_lengths: list[int] | None, attention_mask: torch.Tensor, padded: bool,
                    answers: int | None = None) -> Positions:
    """Position counts of one step from the batch's lengths (see the module docstring); without the answer
    count the LM head counts on every LLM position."""
    pos = Positions()
    if encoder_lengths is None:
        rows = _encoder_rows(spec, feature_lengths, feature_width, padded)
        stage = rows
        for i, conv in enumerate(spec.encoder_convs):
            stage = [conv.out_len(n) for n in stage]
            pos.counts[f"conv{i}"] = sum(stage)
        pos.counts["frames"] = sum(stage)
        pos.squares["frames"] = sum(n * n for n in stage)
        clip_frames = [spec.encoder_frames_from_features(n) for n in feature_lengths]
    else:
        clip_frames = list(encoder_lengths)
    tokens = [-(-f // spec.stack) for f in clip_frames]
    pos.counts["tokens"] = len(tokens) * max(tokens, default=0) if padded else sum(tokens)
    _llm_positions(attention_mask, padded, pos)
    if answers is not None and not padded:
        pos.counts[HEAD] = answers
    return pos


def _llm_positions(attention_mask: torch.Tensor, padded: bool, pos: Positions) -> None:
    rows = attention_mask.sum(dim=1).tolist()
    seq = [attention_mask.shape[1]] * len(rows) if padded else [int(n) for n in rows]
    pos.counts["llm"] = pos.counts[HEAD] = sum(seq)
    pos.squares["llm"] = sum(n * n for n in seq)


class FlopModel:
    """Per-position FLOPs of a SpeechLM's ops, read once; `step(batch)` prices one batch.

    Args:
        net: the SpeechLM (after trainability is applied; requires_grad decides frozen vs trained).
    """

    def __init__(self, net: nn.Module) -> None:
        self.spec: AudioTokenSpec = net.audio_token_spec()
        n_convs = len(self.spec.encoder_convs)
        encoder = net.encoder
        holder = getattr(encoder, "model", encoder)
        enc_ops, grad = component_ops(encoder, "encoder", False, "frames",
                                      conv_where=lambda c, i: f"conv{i}" if i < n_convs else "frames",
                                      config_holder=holder)
        proj_ops, grad = component_ops(net.projector, "projector", grad, "tokens")
        embed = net.llm.get_input_embeddings().weight.requires_grad
        llm_ops, _ = component_ops(net.llm, "llm", grad or embed, "llm")
        head = _head_names(net.llm)
        llm_ops = [replace(op, where=HEAD) if isinstance(op, MatmulOp) and op.name in head else op for op in llm_ops]
        # Cached encoder states: the encoder does not run; a cache is only allowed for a frozen encoder,
        # so no gradient leaves it either way and the projector/LLM ops are unchanged.
        self.ops: dict[str, list[MatmulOp | AttentionOp]] = {
            "encoder": enc_ops, "projector": proj_ops, "llm": llm_ops,
        }

    def step(self, batch, padded: bool = False, backward: bool = True) -> StepFlops:
        """FLOPs of a training step on `batch` (forward only when backward=False)."""
        cached = batch.encoder_states is not None
        pos = batch_positions(
            self.spec, [int(n) for n in batch.feature_lengths.tolist()], int(batch.features.shape[-1]),
            [int(n) for n in batch.encoder_lengths.tolist()] if cached else None,
            batch.attention_mask, padded, batch.num_answer_tokens(),
        )
        out = StepFlops()
        for component, ops in self.ops.items():
            if component == "encoder" and cached:
                continue
            for op in ops:
                self._price(op, pos, backward, out, component)
        return out

    @staticmethod
    def _price(op, pos: Positions, backward: bool, out: StepFlops, component: str) -> None:
        if isinstance(op, AttentionOp):
            fwd = 4.0 * op.width * pos.squares.get(op.where, 0)
            flops = fwd * (1.0 + (op.backward if backward else 0.0))
            out.attention += flops
        else:
            fwd = float(op.flops_per_position) * pos.counts.get(op.where, 0)
            flops = fwd * (1 + (op.backward_factor() if backward else 0))
            if op.trains:
                out.trained += flops
            else:
                out.frozen += flops
        out.by_component[component] += flops


def _head_names(llm: nn.Module) -> set[str]:
    """Op names (as component_ops reports them under "llm") of the LLM's output head, LoRA parts included."""
    head = llm.get_output_embeddings()
    for rel, module in llm.named_modules():
        if module is head:
            name = f"llm.{rel}".removesuffix(".base_layer")  # a LoRA-wrapped head: its adapters run where it runs
            return {name, *(f"{name}.{part}" for part in ("base_layer", "lora_A", "lora_B"))}
    return set()


def lm_step_flops(llm: nn.Module, attention_mask: torch.Tensor, padded: bool = False, backward: bool = True,
                  grad_into_inputs: bool = False) -> StepFlops:
    """FLOPs of a step of a plain causal LM on (B, L) tokens (the bare-loop reference of the GPU benchmark).

    grad_into_inputs: a gradient flows into the input embeddings (True inside a SpeechLM whose projector
    trains; False for a LoRA loop on token ids, where nothing before the first adapter trains).
    """
    pos = Positions()
    _llm_positions(attention_mask, padded, pos)
    ops, _ = component_ops(llm, "llm", grad_into_inputs, "llm")
    out = StepFlops()
    for op in ops:
        FlopModel._price(op, pos, backward, out, "llm")
    return out


def step_flops(net: nn.Module, batch, padded: bool = False, backward: bool = True) -> StepFlops:
    """One-off convenience: FLOPs of a step of `net` on `batch` (build a FlopModel to reuse)."""
    return FlopModel(net).step(batch, padded=padded, backward=backward)
