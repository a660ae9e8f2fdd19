"""Per-component trainability: frozen | lora | full, applied with small registries of mode -> function.

The LLM gets a peft `PeftModel` (so its adapter saves with `save_pretrained` and loads with
`PeftModel.from_pretrained`); encoders get adapters injected in place, because the encoder's forward
calls its submodules directly and must keep its own class.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

from peft import LoraConfig, get_peft_model, inject_adapter_in_model
from torch import nn

from paralm.model.config import LoraSettings, check_choice

# Attention projection names by model family, tried in order when target_modules is None.
LORA_TARGET_GROUPS: tuple[tuple[str, ...], ...] = (
    ("q_proj", "k_proj", "v_proj", "o_proj"),  # llama, qwen2, gemma, mistral
    ("q_proj", "k_proj", "v_proj", "out_proj"),  # whisper, wav2vec2, hubert, wavlm
    ("qkv_proj", "o_proj"),  # phi-3
    ("query_key_value", "dense"),  # gpt-neox, falcon
    ("c_attn",),  # gpt-2
)


def linear_leaf_names(module: nn.Module) -> set[str]:
    """Last name segment of every Linear (or GPT-2 Conv1D) submodule."""
    return {name.rsplit(".", 1)[-1] for name, m in module.named_modules()
            if isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D"}


def lora_targets(module: nn.Module, settings: LoraSettings) -> list[str]:
    """The configured targets, checked against the model, or the first known attention group present."""
    present = linear_leaf_names(module)
    if settings.target_modules is not None:
        missing = [t for t in settings.target_modules if t not in present]
        if missing:
            raise ValueError(f"lora target_modules {missing} not found; linear layers here: {sorted(present)}")
        return list(settings.target_modules)
    for group in LORA_TARGET_GROUPS:
        if set(group) <= present:
            return list(group)
    raise ValueError(f"no known attention projections to adapt; set lora.target_modules from: {sorted(present)}")


def lora_config(module: nn.Module, settings: LoraSettings, task_type: str | None = None) -> LoraConfig:
    return LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=lora_targets(module, settings), task_type=task_type)


def freeze(module: nn.Module, settings: LoraSettings | None = None) -> nn.Module:
    module.requires_grad_(False)
    return module


def unfreeze(module: nn.Module, settings: LoraSettings | None = None) -> nn.Module:
    module.requires_grad_(True)
    return module


def inject_lora(module: nn.Module, settings: LoraSettings) -> nn.Module:
    """Adapters injected in place; only the adapter weights train."""
    inject_adapter_in_model(lora_config(module, settings), module)
    for name, param in module.named_parameters():
        param.requires_grad_("lora_" in name)
    return module


def wrap_lora(model: nn.Module, settings: LoraSettings) -> nn.Module:
    """A peft causal-LM wrapper around `model`; base frozen, adapters trainable."""
    with warnings.catch_warnings():  # peft still calls a transformers alias deprecated in 5.x
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, lora_config(model, settings, task_type="CAUSAL_LM"))


ModeFn = Callable[[nn.Module, LoraSettings], nn.Module]
ENCODER_MODES: dict[str, ModeFn] = {"frozen": freeze, "lora": inject_lora, "full": unfreeze}
PROJECTOR_MODES: dict[str, ModeFn] = {"frozen": freeze, "full": unfreeze}
LLM_MODES: dict[str, ModeFn] = {"frozen": freeze, "lora": wrap_lora, "full": unfreeze}


def apply_mode(modes: dict[str, ModeFn], what: str, module: nn.Module, mode: str,
               settings: LoraSettings | None = None) -> nn.Module:
    """Apply `mode` from a registry; returns the (possibly wrapped) module."""
    check_choice(f"{what}.trainable", mode, tuple(modes))
    return modes[mode](module, settings or LoraSettings())


def has_trainable(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def count_params(module: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    params = list(module.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
