"""FSDP set up for a PEFT Speech-LLM: `PeftFSDPStrategy` and its auto-wrap policy.

`PeftFSDPStrategy` shards the model with `use_orig_params=True` and an auto-wrap policy that makes
(a) every transformer layer of the encoder and LLM (the classes their Hugging Face models list in
`_no_split_modules`) and (b) every leaf module holding trainable weights (LoRA A/B, projector layers) its
own FSDP unit. FSDP flattens each unit's parameters into one tensor of one dtype, so frozen base weights
(bf16 on GPU) and trained ones (fp32) must never share a unit; (b) keeps them apart, and the frozen units
never carry gradients. Plain `--trainer.strategy fsdp` would wrap the whole network as a single unit and
fail on the mixed dtypes; `fabric run --strategy fsdp` is mapped to this class (paralm/launch.py).
Users name it `paralm.peft_fsdp.PeftFSDPStrategy`; the older `paralm.launch.PeftFSDPStrategy` is the same
class.
"""

from __future__ import annotations

from collections.abc import Iterable

from lightning.pytorch.strategies import FSDPStrategy
from torch import nn


def no_split_layer_names(model: nn.Module) -> set[str]:
    """Class names that Hugging Face models inside `model` declare as their transformer layers."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    return names


def holds_trainable_leaf(module: nn.Module) -> bool:
    """A leaf module (no children) with at least one trainable parameter of its own."""
    if next(module.children(), None) is not None:
        return False
    return any(p.requires_grad for p in module.parameters(recurse=False))


class PeftWrapPolicy:
    """FSDP auto-wrap policy: transformer layers, and every leaf with trainable weights, become units.

    Args:
        layer_names: class names wrapped as units; None = read `_no_split_modules` of the Hugging Face
            models in the network on the first call (FSDP calls the policy on the root module first).
    """

    def __init__(self, layer_names: Iterable[str] | None = None) -> None:
        self.layer_names = set(layer_names) if layer_names is not None else None

    def __call__(self, module: nn.Module, recurse: bool, nonwrapped_numel: int) -> bool:
        if self.layer_names is None:
            self.layer_names = no_split_layer_names(module)
        if recurse:
            return True
        return type(module).__name__ in self.layer_names or holds_trainable_leaf(module)


def wrap_plan(model: nn.Module, policy) -> list[str]:
    """Qualified names of the modules FSDP's recursive auto-wrap would make units (children before
    parents; the root is always a unit and is not listed). For checks and debugging; wraps nothing."""
    chosen: list[str] = []

    def visit(name: str, module: nn.Module) -> None:
        numel = sum(p.numel() for p in module.parameters())
        if not policy(module=module, recurse=True, nonwrapped_numel=numel):
            return
        for child_name, child in module.named_children():
            visit(f"{name}.{child_name}" if name else child_name, child)
        if name and policy(module=module, recurse=False, nonwrapped_numel=numel):
            chosen.append(name)

    visit("", model)
    return chosen


def unit_parameters(model: nn.Module, units: list[str]) -> dict[str, list[nn.Parameter]]:
    """Parameters each FSDP unit flattens: its own, minus those inside nested units ("" = the root)."""
    owner: dict[str, str] = {}
    for unit in sorted(units, key=len):  # parents first; nested units overwrite below
        for pname, _ in model.get_submodule(unit).named_parameters(prefix=unit):
            owner[pname] = unit
    groups: dict[str, list[nn.Parameter]] = {}
    for pname, param in model.named_parameters():
        groups.setdefault(owner.get(pname, ""), []).append(param)
    return groups


class PeftFSDPStrategy(FSDPStrategy):
    """FSDP that wraps a PEFT Speech-LLM correctly (see the module docstring).

    Args:
        layer_names: class names to wrap as units; None = each Hugging Face model's `_no_split_modules`.
        use_orig_params: keep the original parameters visible (needed when frozen and trained
            parameters live in one module, as LoRA layers do, and for per-part learning rates).
        **kwargs: passed to Lightning's FSDPStrategy (sharding_strategy, timeout, cpu_offload, ...).
    """

    def __init__(self, layer_names: list[str] | None = None, use_orig_params: bool = True, **kwargs) -> None:
        if not use_orig_params:
            raise ValueError("PeftFSDPStrategy needs use_orig_params=True: LoRA layers mix frozen and trained "
                             "parameters and the optimiser groups them by name")
        super().__init__(auto_wrap_policy=PeftWrapPolicy(layer_names), use_orig_params=True, **kwargs)
