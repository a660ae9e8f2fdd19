"""Does a sweep name only what the CLI accepts? Parse its trial commands with the real LightningCLI parser.

Sweep parameter names are CLI keys, and a typo (`model.optim.lora_rl`) would otherwise surface only
when the first trial starts on a GPU node, or never, if a value happened to be ignored. The check
expands the trial command for representative values of every parameter (each categorical value, the
ends of every range) and parses it with `paralm fit ... --print_config`, which validates every key and
value against the typed signatures without building a model or reading data.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Any

from paralm.runs.sweep.spec import SweepSpec, import_sweeps
from paralm.runs.sweep.state import plain

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")
RANGE_POINTS = (0.02, 0.98)  # quantiles tried for continuous distributions


def representative_values(name: str, config: dict) -> list[Any]:
    """Values to try for one parameter: all categorical values, or two quantiles of a distribution."""
    if "value" in config:
        return [config["value"]]
    if "values" in config:
        return list(config["values"])
    param = import_sweeps().params.HyperParameter(name, config)
    return list(dict.fromkeys(plain(param.ppf(q)) for q in RANGE_POINTS))


def probe_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """The first value of every parameter, then each other value of one parameter at a time."""
    reps = {k: representative_values(k, v) for k, v in spec.parameters.items()}
    base = {k: v[0] for k, v in reps.items()}
    points = [base]
    for key, values in reps.items():
        points += [{**base, key: v} for v in values[1:]]
    return points


def cli_argv(command: list[str]) -> list[str]:
    """The LightningCLI part of an expanded command: from its subcommand on."""
    for i, word in enumerate(command):
        if word in LIGHTNING_SUBCOMMANDS:
            return command[i:]
    raise ValueError(f"trial command has no LightningCLI subcommand ({', '.join(LIGHTNING_SUBCOMMANDS)}): "
                     f"{' '.join(command)}")


@contextlib.contextmanager
def _working_dir(path: Path):
    old, argv = os.getcwd(), list(sys.argv)
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)
        sys.argv[:] = argv


def parse_with_cli(argv: list[str], cwd: Path) -> str | None:
    """None if the real CLI parser accepts `argv`, else its error message (last lines of its output)."""
    return print_config(argv, cwd)[0]


def print_config(argv: list[str], cwd: Path) -> tuple[str | None, dict | None]:
    """(error, None) when the real CLI parser refuses `argv`, else (None, the resolved config it prints)."""
    import yaml

    from paralm.lightning_cli import run_lightning_cli

    out, err = io.StringIO(), io.StringIO()
    code: Any = 0
    with _working_dir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run_lightning_cli(argv + ["--print_config"])
        except SystemExit as stop:
            code = stop.code
    if code in (0, None):
        try:
            config = yaml.safe_load(out.getvalue())
        except yaml.YAMLError:
            config = None
        return None, config if isinstance(config, dict) else None
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.startswith("error:")), max(0, len(lines) - 6))
    return "\n".join(lines[start:]) or f"parser exited with {code}", None


def check_cli_keys(spec: SweepSpec, cwd: Path, before_args: list[str] = (),
                   configs_out: list[dict] | None = None) -> list[str]:
    """Problems found parsing the trial commands of `spec` (empty when every probe point parses); the
    resolved config of every probe that parsed is appended to `configs_out`."""
    problems = []
    for point in probe_points(spec):
        command = spec.expand(point, interpreter="python", before_args=list(before_args))
        error, config = print_config(cli_argv(command), cwd)
        if config is not None and configs_out is not None:
            configs_out.append(config)
        if error:
            shown = ", ".join(f"{k}={v}" for k, v in point.items())
            problems.append(f"{spec.path} with {shown}:\n{error}")
    return problems
