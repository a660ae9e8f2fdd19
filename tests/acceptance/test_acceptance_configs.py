"""Every file in experiments/ and sweeps/ is read by the real `paralm` parser (ParalmCLI itself, not a
copy of its arguments), and every experiment config trains two steps on CPU through the console script.

Experiment files with `rows:` are ablation files: they go through the ablation validator, and the model
config they point to is one of the experiment configs trained here."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from acc_runner import plans
from acc_workspace import FIT_STEPS, ROOT, make_workspace

from paralm.runs.sweep.check import cli_argv, parse_with_cli, probe_points
from paralm.runs.sweep.spec import SweepSpec

pytestmark = pytest.mark.timeout(900)  # subprocess fits on a busy 2-core machine
EXPERIMENTS = sorted((ROOT / "experiments").rglob("*.yaml"))
ABLATIONS = [p for p in EXPERIMENTS if "rows" in (yaml.safe_load(p.read_text()) or {})]
FIT_CONFIGS = [p for p in EXPERIMENTS if p not in ABLATIONS]
SWEEPS = sorted((ROOT / "sweeps").glob("*.yaml"))
# Under `-m slow` only: real pretrained weights (a minute of CPU), and the demo model (default-run budget).
SLOW_TO_TRAIN = {"experiments/real_cpu.yaml", "experiments/demo/model.yaml"}  # ablation_demo.yaml's model


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def needs_cpu_overlay(path: Path) -> bool:
    """GPU configs and configs that read local model folders get the tiny CPU overlay (sizes only)."""
    cfg = yaml.safe_load(path.read_text())
    model = (cfg.get("model") or {}).get("model") or {}
    return (cfg.get("trainer") or {}).get("accelerator") == "gpu" or any(
        (model.get(part) or {}).get("path") for part in ("encoder", "llm"))


def fit_argv(path: Path) -> list[str]:
    overlay = ["--config", "cpu_overlay.yaml"] if needs_cpu_overlay(path) else []
    return ["paralm", "fit", "--config", rel(path), *overlay, *FIT_STEPS]


def run_by_default_in_the_doc_suite(path: Path) -> bool:
    """A config that a documented `paralm fit --config X [--config overlay]` already trains two steps in
    the default run (as a default command or as one that a default command of its block runs first)."""
    all_plans = plans()
    default_blocks = {p.block for p in all_plans if not p.slow}
    return any(p.block in default_blocks and not p.substitute
               and p.argv[:4] == ["paralm", "fit", "--config", rel(path)] for p in all_plans)


def test_the_folders_hold_what_the_docs_name():
    assert {"base.yaml", "debug_cpu.yaml"} <= {p.name for p in FIT_CONFIGS}
    assert ABLATIONS and len(SWEEPS) >= 3


@pytest.mark.parametrize("path", FIT_CONFIGS, ids=rel)
def test_experiment_config_parses_with_the_real_cli(path):
    error = parse_with_cli(["fit", "--config", rel(path)], ROOT)
    assert error is None, f"{rel(path)}:\n{error}"


@pytest.mark.parametrize("path", SWEEPS, ids=rel)
def test_sweep_trial_command_parses_with_the_real_cli(path):
    """The sweep's schema is valid and its trial command (first value of every parameter) parses."""
    spec = SweepSpec.load(path)
    spec.validate()
    command = spec.expand(probe_points(spec)[0], interpreter="python")
    error = parse_with_cli(cli_argv(command), ROOT)
    assert error is None, f"{rel(path)}:\n{error}"


@pytest.mark.slow
@pytest.mark.parametrize("path", SWEEPS, ids=rel)
def test_sweep_check_through_the_console_script(path, tmp_path):
    result = make_workspace(tmp_path).run(["paralm", "sweep", rel(path), "--check"])
    assert result.returncode == 0, result.tail()


@pytest.mark.parametrize("path", ABLATIONS, ids=rel)
def test_ablation_file_passes_its_validator_and_names_a_trained_model_config(path):
    from paralm.runs.ablate.config import load_ablation

    cfg = load_ablation(path)
    assert cfg.rows and cfg.baseline in cfg.rows
    model = yaml.safe_load(path.read_text())["model"]
    if isinstance(model, str):  # a model config file: it is one of the configs trained below
        assert (path.parent / model).resolve() in {p.resolve() for p in FIT_CONFIGS}, model


@pytest.mark.parametrize("path", [
    pytest.param(p, id=rel(p), marks=[pytest.mark.slow] if run_by_default_in_the_doc_suite(p)
                 or rel(p) in SLOW_TO_TRAIN else [])
    for p in FIT_CONFIGS])
def test_experiment_config_trains_two_steps_on_cpu(path, tmp_path):
    result = make_workspace(tmp_path).run(fit_argv(path))
    assert result.returncode == 0, result.tail()
    assert "max_steps=2` reached" in result.output, result.tail()
