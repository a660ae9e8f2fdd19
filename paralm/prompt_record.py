"""The prompt settings a model was trained with, recorded beside its weights and read back to answer.

Why: a model answers well only when it sees the prompt it was trained on (mode, instruction template,
system line, metadata source and the metadata block's format). `paralm export` records them in the
export's config.json (key "prompt"), read from the training config (`<run>/config.yaml`, which
`paralm fit` writes, or the `--config` files given). `paralm ask` and `paralm serve` rebuild the prompt
from that record and refuse a model without one, with the reason; they never guess.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

import yaml

from paralm.data.prompts import PromptConfig
from paralm.fault.exits import UserError

RUN_CONFIG = "config.yaml"
NO_RECORD = ("records no prompt settings (mode, instruction template, system line, metadata source and "
             "format), so its prompt cannot be rebuilt as in training")


def find_run_config(ckpt: str | Path) -> Path | None:
    """`<run>/config.yaml` of a checkpoint saved as `<run>/checkpoints/X.ckpt` (or `<run>/X.ckpt`)."""
    for folder in list(Path(ckpt).resolve().parents)[:2]:
        if (folder / RUN_CONFIG).is_file():
            return folder / RUN_CONFIG
    return None


def train_prompt_from_configs(files: list[str | Path]) -> PromptConfig:
    """`data.train_prompt` of the given config files, later files overriding earlier ones (as --config does);
    a config that names no train_prompt trained with the default (plain) prompt."""
    merged: dict = {}
    for file in files:
        try:
            doc = yaml.safe_load(Path(file).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise UserError(f"{file}: cannot read the training config ({err})") from None
        section = (doc.get("data") or {}).get("train_prompt") if isinstance(doc, dict) else None
        if isinstance(section, dict):
            merged.update(section.get("init_args", section))
    known = {f.name for f in fields(PromptConfig)}
    unknown = sorted(set(merged) - known)
    if unknown:
        raise UserError(f"data.train_prompt has unknown fields {unknown}; valid: {sorted(known)}")
    try:
        return PromptConfig(**merged)
    except (TypeError, ValueError) as err:
        raise UserError(f"data.train_prompt of {', '.join(map(str, files))}: {err}") from None


def prompt_record(cfg: PromptConfig, config_files: list[str | Path]) -> dict:
    """What export writes: every PromptConfig field plus the config file(s) it came from."""
    return {**asdict(cfg), "from": [str(f) for f in config_files]}


def prompt_from_record(record: dict | None, where: str | Path) -> PromptConfig:
    """The PromptConfig of a record; a missing or broken record is refused with the reason."""
    if not record:
        raise UserError(f"{where} {NO_RECORD}; export it again with `paralm export CKPT --out DIR` "
                        "(it reads <run>/config.yaml, or give the training configs with --config)")
    values = {f.name: record[f.name] for f in fields(PromptConfig) if f.name in record}
    try:
        return PromptConfig(**values)
    except (TypeError, ValueError) as err:
        raise UserError(f"{where}: its recorded prompt settings are invalid ({err})") from None
