"""A W&B sweep YAML, validated, and the trial command it names, expanded the way `wandb agent` does.

The same file serves both modes: `wandb sweep X.yaml && wandb agent ID` against a W&B server, and
`paralm sweep X.yaml` with no server. So the command stays in W&B's own terms: a list with the macros
`${env}`, `${interpreter}`, `${program}`, `${args}` (and the other `${args_*}` forms, `${envvar:NAME}`),
and parameters are flat, dotted CLI keys (`model.optim.lora_lr`) that `${args}` turns into
`--model.optim.lora_lr=0.001`: the parameter forms come from W&B's own function (the agent's
`create_sweep_command_args`), so they are the agent's by construction.
Because the swept values travel as command-line arguments, every rank of a multi-process trial parses
them; nothing depends on `wandb.config`, which only rank 0 would see.

Where `paralm sweep` differs from the agent, on purpose (the only expansion code kept here):
`${interpreter}` is the Python running `paralm sweep` (the agent writes a bare `python`, which is the same
one in an activated environment); an unknown `${macro}` is an error instead of being dropped silently;
`${args_json_file}` names a file `paralm sweep` writes into the trial folder; and extra words
(`before_args`, e.g. `--trainer.max_steps`) go right before the swept ones so swept values win.
"""

from __future__ import annotations

import copy
import hashlib
import os
import platform
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# W&B's command when a sweep names none (wandb/wandb_agent.py, Agent.DEFAULT_SWEEP_COMMAND)
DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]
MACRO = re.compile(r"^\$\{([a-z_]+)\}$")
ENVVAR = re.compile(r"\$\{envvar:([A-Za-z0-9_]*)\}")
GOALS = ("minimize", "maximize")


def _wandb_param_forms(params: dict[str, Any]) -> dict[str, Any]:
    """Every parameter form of W&B's agent, from W&B's own function (imported when first needed: wandb is slow
    to import and `paralm sweep` needs it only to expand a trial's command)."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    return create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})


def _param_macro(name: str) -> Callable[[dict[str, Any]], list[str]]:
    return lambda params: list(_wandb_param_forms(params)[name])


# macro name -> fn(params) -> the words it expands to: W&B's agent's own expansion, word for word
PARAM_MACROS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    name: _param_macro(name)
    for name in ("args", "args_no_hyphens", "args_no_equals", "args_no_boolean_flags", "args_json",
                 "args_append_hydra", "args_override_hydra")
}
OTHER_MACROS = ("env", "interpreter", "program", "args_json_file")


def import_sweeps():
    """The `sweeps` package (W&B's search engine), imported without its pydantic-v2 config warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Valid config keys have changed in V2", category=UserWarning)
        import sweeps
    return sweeps


class SweepSpecError(ValueError):
    """The sweep YAML is unusable; the message names the file and what is wrong."""


@dataclass
class SweepSpec:
    """One sweep YAML.

    Args:
        path: where the YAML was read from.
        config: the YAML as a dict (the W&B sweep schema).
        text_sha256: sha256 of the file's bytes (a restarted sweep refuses a changed file).
    """

    path: Path
    config: dict
    text_sha256: str

    @classmethod
    def load(cls, path: str | os.PathLike) -> SweepSpec:
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as err:
            raise SweepSpecError(f"sweep file {path}: cannot read it ({err.strerror})") from err
        config = yaml.safe_load(raw)
        spec = cls(path, config, hashlib.sha256(raw).hexdigest())
        spec.validate()
        return spec

    # ---- checks ---------------------------------------------------------------------------------
    def validate(self) -> None:
        """Schema (the sweeps package's own validator) plus what `paralm sweep` needs on top."""
        if not isinstance(self.config, dict):
            raise SweepSpecError(f"sweep file {self.path}: expected a mapping at the top level")
        problems = import_sweeps().schema_violations_from_proposed_config(self.config)
        if problems:
            raise SweepSpecError(f"sweep file {self.path}: " + "; ".join(problems))
        for name, p in self.config["parameters"].items():
            if "parameters" in p:
                raise SweepSpecError(f"sweep file {self.path}: parameter {name!r} is nested; use flat dotted "
                                     "CLI keys such as model.optim.lora_lr")
        if "metric" in self.config and self.config["metric"].get("goal", "minimize") not in GOALS:
            raise SweepSpecError(f"sweep file {self.path}: metric.goal must be one of {', '.join(GOALS)}")
        if self.method in ("bayes",) or "early_terminate" in self.config:
            if "metric" not in self.config:
                raise SweepSpecError(f"sweep file {self.path}: method {self.method} / early_terminate needs a "
                                     "metric section (name, goal)")
        for word in self.command:
            for name in _macros_in(str(word)):
                if name not in PARAM_MACROS and name not in OTHER_MACROS:
                    valid = ", ".join(f"${{{m}}}" for m in (*OTHER_MACROS, *PARAM_MACROS))
                    raise SweepSpecError(f"sweep file {self.path}: unknown macro ${{{name}}}; valid: {valid}, "
                                         "${envvar:NAME}")

    # ---- fields ---------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.path.stem)

    @property
    def method(self) -> str:
        return self.config["method"]

    @property
    def parameters(self) -> dict[str, dict]:
        return self.config["parameters"]

    @property
    def metric_name(self) -> str | None:
        return self.config.get("metric", {}).get("name")

    @property
    def goal(self) -> str:
        return self.config.get("metric", {}).get("goal", "minimize")

    @property
    def early_terminate(self) -> dict | None:
        return self.config.get("early_terminate")

    @property
    def command(self) -> list:
        return list(self.config.get("command") or DEFAULT_COMMAND)

    @property
    def program(self) -> str | None:
        return self.config.get("program")

    def grid_size(self) -> int | None:
        """Number of grid points (None unless method is grid and every parameter is discrete)."""
        if self.method != "grid":
            return None
        n = 1
        for p in self.parameters.values():
            if "values" in p:
                n *= len(p["values"])
            elif "distribution" in p and p["distribution"] == "int_uniform":
                n *= int(p["max"]) - int(p["min"]) + 1
            elif "value" not in p:
                return None
        return n

    def with_config_files(self, files: list[str]) -> SweepSpec:
        """The same sweep with the command's `--config` files replaced by `files` (e.g. run a GPU sweep on
        the CPU debug config); the new files go where the first old one was."""
        words, out, placed, i = self.command, [], False, 0
        while i < len(words):
            word = str(words[i])
            if word == "--config" or word.startswith("--config="):
                i += 1 if "=" in word else 2
                if not placed:
                    out += [part for f in files for part in ("--config", f)]
                    placed = True
                continue
            out.append(words[i])
            i += 1
        if not placed:
            raise SweepSpecError(f"sweep file {self.path}: its command has no --config to replace")
        return SweepSpec(self.path, {**copy.deepcopy(self.config), "command": out}, self.text_sha256)

    # ---- the trial command ----------------------------------------------------------------------
    def expand(self, params: dict[str, Any], interpreter: str, args_json_file: str | None = None,
               before_args: list[str] = ()) -> list[str]:
        """The trial's command words. `before_args` go right before the parameter words (so swept values win)."""
        words: list[str] = []
        fixed = {"env": ["/usr/bin/env"] if platform.system() != "Windows" else [],
                 "interpreter": [interpreter],
                 "program": [self.program] if self.program else [],
                 "args_json_file": [args_json_file] if args_json_file else []}
        for word in self.command:
            word = ENVVAR.sub(lambda m: os.environ.get(m.group(1), m.group(1)), str(word))
            macro = MACRO.match(word)
            if macro is None:
                words.append(word)
            elif macro.group(1) in PARAM_MACROS:
                words += list(before_args) + PARAM_MACROS[macro.group(1)](params)
            else:
                if macro.group(1) == "program" and not self.program:
                    raise SweepSpecError(f"sweep file {self.path}: the command uses ${{program}} but no program is set")
                words += fixed[macro.group(1)]
        return words


def _macros_in(word: str) -> list[str]:
    return [m for m in re.findall(r"\$\{([^}]*)\}", word) if not m.startswith("envvar:")]
