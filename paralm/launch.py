"""Launching paralm on many processes: Lightning's launcher entry.

`fabric run --devices N paralm/launch.py fit --config ...` (Lightning 2.5 renamed `lightning run model`
to `fabric run`) needs a script path. It starts one process per device through torchrun and passes
its settings in `LT_*` environment variables that only Fabric reads. This script maps them onto the
Trainer's arguments, so the same `paralm` command line runs unchanged; the Trainer then finds the
torchrun environment and joins the process group (it does not spawn again). Explicit `--trainer.*`
flags on the command line win over the launcher's settings. The same script is the `program` of the
sweep YAMLs and works under plain `torchrun` and `srun`.

FSDP: `fabric run --strategy fsdp` is mapped to `paralm.peft_fsdp.PeftFSDPStrategy` (FSDP that wraps a
PEFT model correctly; see that module). Its names are importable from here too, as configs written
before it moved say `paralm.launch.PeftFSDPStrategy`.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # run as a file: its folder (paralm/) on sys.path would shadow stdlib modules
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
    sys.path.insert(0, os.path.dirname(_here))  # the checkout root, for a checkout that is not installed

from paralm.peft_fsdp import (  # noqa: E402,F401  (old import path of these names)
    PeftFSDPStrategy,
    PeftWrapPolicy,
    holds_trainable_leaf,
    no_split_layer_names,
    unit_parameters,
    wrap_plan,
)

PEFT_FSDP = "paralm.peft_fsdp.PeftFSDPStrategy"
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
