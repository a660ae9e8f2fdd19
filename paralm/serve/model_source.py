"""MODEL as `paralm ask` and `paralm serve` take it: an export folder or a verified checkpoint plus its
training config, loaded through `paralm.predict.load_for_prediction`, with the prompt it was trained on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from paralm.data.prompts import PromptConfig
from paralm.fault.exits import UserError
from paralm.prompt_record import find_run_config, prompt_from_record, train_prompt_from_configs


@dataclass
class AnsweringModel:
    """A model in eval mode, the prompt settings of its training, and where it came from."""

    model: object  # paralm.model.speech_lm.SpeechLM
    prompt: PromptConfig
    source: Path
    step: int

    @property
    def sample_rate(self) -> int:
        return int(self.model.audio_token_spec().features.sample_rate)


def training_prompt(source: str | Path, configs: list[str] | None = None) -> PromptConfig:
    """The recorded prompt of an export, or a checkpoint's from --config files / its run's config.yaml."""
    path = Path(source)
    if path.is_dir():
        if configs:
            return train_prompt_from_configs(configs)
        return prompt_from_record(_export_meta(path).get("prompt"), path)
    if not path.is_file():
        raise UserError(f"{source}: no such export folder or checkpoint file")
    files = configs or [f for f in [find_run_config(path)] if f is not None]
    if not files:
        raise UserError(f"{path}: no training config to rebuild its prompt from; give --config <run>/config.yaml "
                        "(written by `paralm fit`) or answer from an export folder")
    return train_prompt_from_configs(files)


def _export_meta(folder: Path) -> dict:
    """config.json of an export, read without importing the model code (a refusal costs no torch import)."""
    file = folder / "config.json"
    try:
        meta = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{folder}: not an export folder of `paralm export` ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != "paralm-speech-lm":
        raise UserError(f"{file} is not a paralm export config (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    return meta


def load_answering_model(source: str | Path, configs: list[str] | None = None) -> AnsweringModel:
    """Prompt first (a refused model costs no weight loading), then the weights."""
    prompt = training_prompt(source, configs)
    from paralm.predict import load_for_prediction

    loaded = load_for_prediction(source)
    return AnsweringModel(loaded.model, prompt, loaded.source, loaded.step)
