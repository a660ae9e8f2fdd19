"""Per-component trainability: frozen | lora | full, applied with small registries of mode -> function.

The LLM gets a peft `PeftModel` (so its adapter saves with `save_pretrained` and loads with
`PeftModel.from_pretrained`); encoders get adapters injected in place, because the encoder's forward
calls its submodules directly and must keep its own class.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator

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


# ---- training mode: train only where something trains ------------------------------------------------
# Why not nn.Module.train: LoRA sits inside a frozen base, and HF layers checkpoint activations only when
# they are `.training`, so every module on the path to a trained parameter must train; but a frozen base
# must not turn stochastic (its dropout, layer drop) because an adapter was put inside it.
NOISE_ATTRIBUTE = re.compile(r"(dropout|layerdrop|drop_path)$")


def all_trainable(module: nn.Module) -> bool:
    params = list(module.parameters())
    return bool(params) and all(p.requires_grad for p in params)


def owns_trained_noise(module: nn.Module) -> bool:
    """Whether dropout owned by `module` belongs to trained weights: the module trains fully, or it directly
    holds a fully trained part (a peft LoRA layer holds lora_A / lora_B beside its lora_dropout)."""
    return all_trainable(module) or any(all_trainable(child) for child in module.children())


def noise_allowed(root: nn.Module) -> Iterator[tuple[nn.Module, bool, bool]]:
    """(module, has parameters, may its dropout be on) for every module under `root`, parents first.
    A module without parameters (nn.Dropout, activations) follows the nearest ancestor that has some."""

    def visit(module: nn.Module, inherited: bool) -> Iterator[tuple[nn.Module, bool, bool]]:
        has_params = next(module.parameters(), None) is not None
        allowed = owns_trained_noise(module) if has_params else inherited
        yield module, has_params, allowed
        for child in module.children():
            yield from visit(child, allowed)

    yield from visit(root, False)


def set_train_mode(root: nn.Module, mode: bool) -> None:
    """mode False: everything in eval. mode True: a module with parameters trains iff one of them (at any
    depth) trains; a parameter-free one (dropout) only inside trained weights (see `noise_allowed`)."""
    for module, has_params, allowed in noise_allowed(root):
        module.training = bool(mode) and (has_trainable(module) if has_params else allowed)


def silence_frozen_noise(root: nn.Module) -> list[str]:
    """Zero float dropout / layer-drop rates (HF layers read them with `training=self.training`) of modules
    whose noise does not belong to trained weights; call once trainability is applied. Returns their names."""
    names = {id(m): n for n, m in root.named_modules()}
    silenced = []
    for module, _, allowed in noise_allowed(root):
        if allowed:
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, float) and value > 0 and NOISE_ATTRIBUTE.search(attr):
                setattr(module, attr, 0.0)
                silenced.append(f"{names.get(id(module), '?')}.{attr}")
    return silenced
