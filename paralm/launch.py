"""Launching paralm on many processes: Lightning's launcher entry, and FSDP set up for a PEFT model.

`fabric run --devices N paralm/launch.py fit --config ...` (Lightning 2.5 renamed `lightning run model`
to `fabric run`) needs a script path. It starts one process per device through torchrun and passes
its settings in `LT_*` environment variables that only Fabric reads. This script maps them onto the
Trainer's arguments, so the same `paralm` command line runs unchanged; the Trainer then finds the
torchrun environment and joins the process group (it does not spawn again). Explicit `--trainer.*`
flags on the command line win over the launcher's settings. The same script is the `program` of the
sweep YAMLs and works under plain `torchrun` and `srun`.

FSDP: `PeftFSDPStrategy` shards the model with `use_orig_params=True` and an auto-wrap policy that
makes (a) every transformer layer of the encoder and LLM (the classes their Hugging Face models list in
`_no_split_modules`) and (b) every leaf module holding trainable weights (LoRA A/B, projector layers)
its own FSDP unit. FSDP flattens each unit's parameters into one tensor of one dtype, so frozen base
weights (bf16 on GPU) and trained ones (fp32) must never share a unit; (b) keeps them apart, and the
frozen units never carry gradients. Plain `--trainer.strategy fsdp` would wrap the whole network as a
single unit and fail on the mixed dtypes; `fabric run --strategy fsdp` is mapped to this class.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # run as a file: its folder (paralm/) on sys.path would shadow stdlib modules
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
    sys.path.insert(0, os.path.dirname(_here))  # the checkout root, for a checkout that is not installed

from collections.abc import Iterable  # noqa: E402

from lightning.pytorch.strategies import FSDPStrategy  # noqa: E402
from torch import nn  # noqa: E402

PEFT_FSDP = "paralm.launch.PeftFSDPStrategy"
LT_TO_TRAINER = {
    "LT_ACCELERATOR": "accelerator",
    "LT_STRATEGY": "strategy",
    "LT_DEVICES": "devices",
    "LT_NUM_NODES": "num_nodes",
    "LT_PRECISION": "precision",
}
# launcher strategy names that mean something else for a paralm model
STRATEGY_ALIASES = {"fsdp": PEFT_FSDP}


def trainer_args_from_env(argv: list[str], env: dict[str, str] | None = None) -> list[str]:
    """Trainer flags implied by the launcher's LT_* variables, minus those the user already set."""
    env = dict(os.environ if env is None else env)
    extra = []
    for var, name in LT_TO_TRAINER.items():
        value = env.get(var)
        flag = f"--trainer.{name}"
        if value in (None, "", "None") or any(a == flag or a.startswith(flag + "=") for a in argv):
            continue
        if name == "strategy":
            value = STRATEGY_ALIASES.get(value, value)
        extra.append(f"{flag}={value}")
    return extra


# ---- FSDP for a PEFT model --------------------------------------------------------------------------
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


# ---- the launcher entry -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    from paralm.cli import main as cli_main

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("fit", "validate", "test", "predict"):
        argv = argv + trainer_args_from_env(argv)
    code = cli_main(argv)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():  # some gloo runs abort at exit without this
        dist.barrier()
        dist.destroy_process_group()
    return code


if __name__ == "__main__":
    sys.exit(main())
