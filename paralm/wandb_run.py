"""How a `paralm fit` W&B run is started: mode, name, group.

Why: the CLI used to export `WANDB_MODE=offline` by default, and that variable beats the logger's own
`offline: false`, so no run could ever go online (a sweep server never saw a metric). The rule now:

1. an explicit `WANDB_MODE` in the environment (set before paralm started) is honoured;
2. else the config decides: `offline: false` (or `mode: online`) goes online, `offline: true` offline;
3. else (the config says nothing) offline: nothing leaves the machine unless someone asked for it.

The mode is handed to `wandb.init(mode=...)` explicitly, so what the run does is what the config says.
The logger's name and group come from `--run_name` / `--run_group` where the logger config leaves them
empty.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

ENV = "WANDB_MODE"
ALIASES = {"dryrun": "offline", "run": "online"}  # legacy spellings wandb still reads from the environment


def said_mode(raw_logger: Any) -> str | None:
    """The mode the user's own config/flags give a WandbLogger (parsed without defaults), or None."""
    for spec in raw_logger if isinstance(raw_logger, (list, tuple)) else [raw_logger]:
        if not hasattr(spec, "get") or "WandbLogger" not in str(spec.get("class_path", "")):
            continue
        args = spec.get("init_args") or {}
        if args.get("mode"):
            return str(args.get("mode"))
        if args.get("offline") is not None:
            return "offline" if args.get("offline") else "online"
    return None


def resolve_mode(said: str | None, environ: Mapping[str, str] | None = None) -> str:
    """Rule 1-3 of the module docstring."""
    environ = os.environ if environ is None else environ
    chosen = environ.get(ENV) or said or "offline"
    return ALIASES.get(chosen, chosen)


def configure_wandb_loggers(loggers: list, mode: str, name: str, group: str | None) -> None:
    """Hand `mode` to every WandbLogger's wandb.init and fill in name and group where they are empty."""
    for logger in loggers:
        if type(logger).__name__ != "WandbLogger" or not hasattr(logger, "_wandb_init"):
            continue
        init = logger._wandb_init
        init["mode"] = mode
        if not init.get("name") and name:
            init["name"] = logger._name = name
        if not init.get("group") and group:
            init["group"] = group
