"""Sweep YAML handling: W&B's command macros expanded exactly as `wandb agent` does, and bad files refused."""

from __future__ import annotations

import pytest
import yaml
from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

from paralm.runs.sweep.spec import DEFAULT_COMMAND, PARAM_MACROS, SweepSpec, SweepSpecError

PARAMS = {"model.optim.lora_lr": 1e-05, "model.model.llm.lora.r": 16, "trainer.deterministic": True,
          "trainer.enable_progress_bar": False, "data.implicit_ratio": 0.25, "model.model.llm.lora.target_modules":
          ["q_proj", "v_proj"]}


def write(tmp_path, config: dict, name: str = "s.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def minimal(**extra) -> dict:
    return {"method": "grid", "program": "paralm/launch.py",
            "parameters": {"model.optim.lora_lr": {"values": [0.1, 0.01]}}, **extra}


def test_param_macros_expand_exactly_like_the_wandb_agent():
    theirs = create_sweep_command_args({"args": {k: {"value": v} for k, v in PARAMS.items()}})
    list_forms = {name for name, words in theirs.items() if isinstance(words, list)}
    assert list_forms == set(PARAM_MACROS)
    for name in list_forms:
        assert PARAM_MACROS[name](PARAMS) == theirs[name], name


def test_command_expansion_keeps_words_in_place_and_extra_args_precede_swept_ones(tmp_path):
    command = ["${env}", "${interpreter}", "${program}", "fit", "--config", "base.yaml", "${args}", "--tail"]
    spec = SweepSpec.load(write(tmp_path, minimal(command=command)))
    words = spec.expand({"model.optim.lora_lr": 0.1}, interpreter="/venv/bin/python",
                        before_args=["--trainer.max_steps=3"])
    assert words == ["/usr/bin/env", "/venv/bin/python", "paralm/launch.py", "fit", "--config", "base.yaml",
                     "--trainer.max_steps=3", "--model.optim.lora_lr=0.1", "--tail"]


def test_missing_command_means_wandbs_default_command(tmp_path):
    spec = SweepSpec.load(write(tmp_path, minimal()))
    assert spec.command == DEFAULT_COMMAND
    assert spec.expand({"a": 1}, interpreter="py") == ["/usr/bin/env", "py", "paralm/launch.py", "--a=1"]


def test_envvar_macro_reads_the_environment_or_keeps_the_name(tmp_path, monkeypatch):
    monkeypatch.setenv("PARALM_TEST_BASE", "experiments/base.yaml")
    spec = SweepSpec.load(write(tmp_path, minimal(command=["x", "${envvar:PARALM_TEST_BASE}",
                                                           "--y=${envvar:PARALM_TEST_UNSET}"])))
    assert spec.expand({}, interpreter="py") == ["x", "experiments/base.yaml", "--y=PARALM_TEST_UNSET"]


def test_unknown_macro_is_refused_naming_the_valid_ones(tmp_path):
    with pytest.raises(SweepSpecError, match=r"unknown macro \$\{argz\}; valid: .*\$\{args\}"):
        SweepSpec.load(write(tmp_path, minimal(command=["${env}", "${argz}"])))


def test_schema_violations_are_refused_with_the_file_named(tmp_path):
    path = write(tmp_path, {"method": "grdi", "parameters": {"a": {"values": [1]}}})
    with pytest.raises(SweepSpecError, match="s.yaml: .*grdi"):
        SweepSpec.load(path)


def test_bayes_without_metric_is_refused(tmp_path):
    with pytest.raises(SweepSpecError, match="needs a metric"):
        SweepSpec.load(write(tmp_path, {**minimal(), "method": "bayes"}))


def test_nested_parameters_are_refused_in_favour_of_dotted_cli_keys(tmp_path):
    config = {**minimal(), "parameters": {"model": {"parameters": {"lr": {"values": [1, 2]}}}}}
    with pytest.raises(SweepSpecError, match="nested; use flat dotted CLI keys"):
        SweepSpec.load(write(tmp_path, config))


def test_config_files_can_be_swapped_without_editing_the_yaml(tmp_path):
    command = ["${env}", "${interpreter}", "${program}", "fit", "--config", "a.yaml", "--config=b.yaml", "${args}"]
    spec = SweepSpec.load(write(tmp_path, minimal(command=command))).with_config_files(["debug.yaml", "o.yaml"])
    assert spec.expand({}, interpreter="py")[3:] == ["fit", "--config", "debug.yaml", "--config", "o.yaml"]
    with pytest.raises(SweepSpecError, match="no --config to replace"):
        SweepSpec.load(write(tmp_path, minimal(), "n.yaml")).with_config_files(["x.yaml"])


def test_grid_size_counts_every_combination(tmp_path):
    params = {"a": {"values": [1, 2, 3]}, "b": {"distribution": "int_uniform", "min": 1, "max": 2}, "c": {"value": 0}}
    assert SweepSpec.load(write(tmp_path, {**minimal(), "parameters": params})).grid_size() == 6


def test_param_macros_are_computed_by_wandbs_own_function(monkeypatch):
    import wandb.sdk.launch.sweeps.utils as wandb_utils

    monkeypatch.setattr(wandb_utils, "create_sweep_command_args", lambda command: {"args": ["--from-wandb"]})
    assert PARAM_MACROS["args"]({"a": 1}) == ["--from-wandb"]
