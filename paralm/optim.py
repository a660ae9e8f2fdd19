"""AdamW with one learning rate per trained part, and a warm-up + cosine schedule.

Why separate rates: the projector starts from random weights and wants a larger step than LoRA adapters
on a pretrained LLM (the usual Speech-LLM recipe); parts trained fully get their own rate too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class OptimConfig:
    """Optimiser and schedule.

    Args:
        projector_lr: learning rate of the projector parameters.
        lora_lr: learning rate of LoRA adapter parameters (LLM and encoder).
        full_lr: learning rate of parameters of components trained fully (trainable: full).
        weight_decay: AdamW weight decay (not applied to biases and norms).
        betas: AdamW betas.
        eps: AdamW epsilon.
        warmup_steps: linear warm-up steps from 0 to the peak rate.
        total_steps: length of the cosine decay; 0 = take trainer.estimated_stepping_batches.
        min_lr_ratio: the cosine ends at peak * min_lr_ratio.
        grad_clip: gradient norm clip handled by the Trainer (gradient_clip_val); kept here for reports only.
    """

    projector_lr: float = 1e-3
    lora_lr: float = 2e-4
    full_lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 10
    total_steps: int = 0
    min_lr_ratio: float = 0.1


def group_of(name: str) -> str:
    """Which learning-rate group a trainable parameter belongs to, by its qualified name."""
    if "lora_" in name:
        return "lora"
    if name.startswith("projector.") or ".projector." in name:
        return "projector"
    return "full"


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    """AdamW parameter groups: (projector | lora | full) x (decay | no decay). Empty groups are dropped."""
    lrs = {"projector": cfg.projector_lr, "lora": cfg.lora_lr, "full": cfg.full_lr}
    buckets: dict[tuple[str, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = p.ndim >= 2 and "norm" not in name.lower()
        buckets.setdefault((group_of(name), decay), []).append(p)
    groups = []
    for (group, decay), params in sorted(buckets.items()):
        groups.append({
            "params": params,
            "lr": lrs[group],
            "weight_decay": cfg.weight_decay if decay else 0.0,
            "name": f"{group}{'' if decay else '_nodecay'}",
        })
    if not groups:
        raise ValueError("no trainable parameters: every component is frozen; set projector.trainable=full "
                         "or encoder/llm trainable to lora|full")
    return groups


def warmup_cosine(warmup: int, total: int, min_ratio: float):
    """Multiplier of the peak rate at a given step: linear warm-up, then cosine to min_ratio."""

    def fn(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        span = max(1, total - warmup)
        progress = min(1.0, (step - warmup) / span)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return fn


def build_optimizer(model: nn.Module, cfg: OptimConfig, total_steps: int):
    """AdamW (fp32 states for the fp32 trained parameters) and a per-step LambdaLR."""
    opt = torch.optim.AdamW(param_groups(model, cfg), betas=tuple(cfg.betas), eps=cfg.eps)
    total = cfg.total_steps or total_steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(cfg.warmup_steps, total, cfg.min_lr_ratio))
    return opt, sched
