"""Entry script for Lightning's launcher: `fabric run --devices N paralm/launch.py fit --config ...`.

`fabric run` (called `lightning run model` before Lightning 2.5) needs a script path. It starts one
process per device through torchrun and passes its settings in `LT_*` environment variables that only
Fabric reads. This script maps them onto the Trainer's arguments, so the same `paralm` command line runs
unchanged; the Trainer then finds the torchrun environment and joins the process group (it does not
spawn again). Explicit `--trainer.*` flags on the command line win over the launcher's settings.
"""

from __future__ import annotations

import os
import sys

LT_TO_TRAINER = {
    "LT_ACCELERATOR": "accelerator",
    "LT_STRATEGY": "strategy",
    "LT_DEVICES": "devices",
    "LT_NUM_NODES": "num_nodes",
    "LT_PRECISION": "precision",
}


def trainer_args_from_env(argv: list[str], env: dict[str, str] | None = None) -> list[str]:
    """Trainer flags implied by the launcher's LT_* variables, minus those the user already set."""
    env = dict(os.environ if env is None else env)
    extra = []
    for var, name in LT_TO_TRAINER.items():
        value = env.get(var)
        flag = f"--trainer.{name}"
        if value in (None, "", "None") or any(a == flag or a.startswith(flag + "=") for a in argv):
            continue
        extra.append(f"{flag}={value}")
    return extra


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
