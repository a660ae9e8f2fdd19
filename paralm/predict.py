"""`paralm predict`: answers for a split of the configured data, from a checkpoint or an export folder.

    paralm predict --config C.yaml --ckpt_path CKPT                # a verified checkpoint of `paralm fit`
    paralm predict --config C.yaml --model.init_from EXPORT_DIR    # a folder written by `paralm export`
    ... --data.predict_split val                                    # which split (default: test)

writes `<run folder>/predictions/<split>-step<N>.jsonl` (the predictions format of
paralm/eval/predictions.py; N = the training step of the weights), ready for `paralm judge`.

Why one loader: `load_for_prediction` is the only place that turns a checkpoint or an export into a model
that answers; `paralm predict` uses it (the CLI hands it the path instead of letting Lightning restore the
checkpoint), and so will commands that answer single files or serve. `answer` turns (waveform, question)
pairs into greedy answers with the same prompt and features as training.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

from paralm.eval.generation import gather_rows, rows_from_batch
from paralm.fault.exits import UserError
from paralm.formats.predictions import PredictionRow, write_predictions
from paralm.model.config import SpeechLMConfig
from paralm.model.speech_lm import SpeechLM


@dataclass
class LoadedModel:
    """A model ready to answer, and where its weights came from."""

    model: SpeechLM
    step: int  # the training step of the weights (global_step of the checkpoint)
    source: Path


def load_for_prediction(source: str | Path, config: SpeechLMConfig | None = None) -> LoadedModel:
    """A SpeechLM in eval mode from a verified checkpoint (`.ckpt` of `paralm fit`) or an export folder.

    config: the architecture to build (e.g. the one the command's --config gives); None = the one stored
    with the weights. The trained weights must match it exactly (strict load, one-line error otherwise)."""
    path = Path(source)
    if path.is_dir():
        model, step = _from_export(path, config)
    elif path.is_file():
        model, step = _from_checkpoint(path, config)
    else:
        raise UserError(f"{source}: no such checkpoint file or export folder "
                        "(give a .ckpt of `paralm fit` or a folder written by `paralm export`)")
    return LoadedModel(model.eval(), step, path)


def _from_checkpoint(path: Path, config: SpeechLMConfig | None) -> tuple[SpeechLM, int]:
    from paralm.dataclass_io import from_dict
    from paralm.fault.checkpoint_io import load_verified

    ckpt = load_verified(path)
    stored = ckpt.get("hyper_parameters", {}).get("model")
    if config is None and stored is None:
        raise UserError(f"{path}: no model config in hyper_parameters; not a paralm checkpoint")
    model = SpeechLM.from_config(config or from_dict(SpeechLMConfig, stored))
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items()}
    try:
        model.load_trainable_state_dict(state, strict=True)
    except KeyError as err:
        raise UserError(f"{path} does not fit the configured model: {err}") from None
    return model, int(ckpt.get("global_step", 0))


def _from_export(path: Path, config: SpeechLMConfig | None) -> tuple[SpeechLM, int]:
    info_file = path / "export_info.json"
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    step = info.get("global_step")
    if step is None:  # exports written before global_step was recorded: the checkpoint's name says it
        match = re.search(r"step=(\d+)", str(info.get("checkpoint", "")))
        if match is None:
            raise UserError(f"{path}: export_info.json does not say the training step; export it again with "
                            "`paralm export CKPT --out DIR`")
        step = int(match.group(1))
    try:
        model = SpeechLM.from_export(path, config)
    except (KeyError, RuntimeError, FileNotFoundError) as err:
        raise UserError(f"{path} does not fit the configured model: {err}") from None
    return model, int(step)


def check_same_tokenizer(model: SpeechLM, tokenizer) -> None:
    """The data side tokenises with `tokenizer` (built from the configured model); the loaded weights were
    trained with `model.tokenizer` (an export carries its own). Different ids would give silent garbage."""
    if model.tokenizer.get_vocab() != tokenizer.get_vocab():
        raise UserError("the loaded model's tokenizer differs from the configured one (token ids would not "
                        "match); use the model config the weights were trained with")


def answer(model: SpeechLM, items: Sequence[tuple], sample_rate: int | None = None,
           prompt=None, max_new_tokens: int = 48) -> list[str]:
    """Greedy answers to (mono waveform, question) pairs, prompted and featurised as in training.

    items: (waveform, question) or (waveform, question, meta); meta is a sample's metadata dict (its
    `labels` feed the explicit-mode metadata block).
    sample_rate: of the given waveforms (None: already at the model's rate; others are resampled).
    prompt: a paralm.data.prompts.PromptConfig (default: plain mode, the training instruction)."""
    batch = prompt_batch(model, items, sample_rate, prompt)
    return model.generate(batch.input_ids, batch.attention_mask, batch.features, batch.feature_lengths,
                          max_new_tokens=max_new_tokens, do_sample=False)


def prompt_batch(model: SpeechLM, items: Sequence[tuple], sample_rate: int | None = None, prompt=None):
    """The generation Batch (left-padded prompts + log-mel, on the model's device) that `answer` decodes."""
    from paralm.data.collate import Collator, FeedItem
    from paralm.data.reader import LoadedSample

    spec = model.audio_token_spec()
    rate = spec.features.sample_rate
    feed = []
    for i, (wave, question, *rest) in enumerate(items):
        audio = np.asarray(wave.cpu() if isinstance(wave, torch.Tensor) else wave, dtype=np.float32).reshape(-1)
        if sample_rate is not None and sample_rate != rate:
            import soxr

            audio = soxr.resample(audio, sample_rate, rate).astype(np.float32)
        meta = {**(rest[0] if rest else {}), "qa": [{"question": question, "answer": "", "type": "C"}]}
        sample = LoadedSample(key=f"item{i}", audio=audio, sample_rate=rate, shard="", meta=meta)
        feed.append(FeedItem(sample, qa_index=0, source="input"))
    batch = Collator(model.tokenizer, spec, prompt, for_generation=True)(feed)
    return batch.to(next(model.parameters()).device)


# ---- `paralm predict` ---------------------------------------------------------------------------------
def run_folder(cli) -> Path:
    """The run's folder: the CLI's `run_dir` (<trainer.default_root_dir>/<run_name>, paralm/run_folder.py)
    when it has one, else the trainer's log dir (which falls back to its default_root_dir)."""
    folder = getattr(cli, "run_dir", None)
    return Path(folder if folder is not None else (cli.trainer.log_dir or cli.trainer.default_root_dir))


def predictions_path(folder: Path, split: str, step: int) -> Path:
    return Path(folder) / "predictions" / f"{split}-step{step}.jsonl"


def prepare_predict(cli) -> None:
    """Before `trainer.predict`: load the weights through `load_for_prediction` and attach the writer."""
    sub = cli.config_init[cli.subcommand]
    ckpt, export = sub.get("ckpt_path"), cli.model.init_from
    if bool(ckpt) == bool(export):
        raise UserError("paralm predict needs exactly one of --ckpt_path CKPT (a checkpoint of `paralm fit`) "
                        f"or --model.init_from DIR (a folder of `paralm export`); got {ckpt!r} and {export!r}")
    loaded = load_for_prediction(ckpt or export, cli.model.model_config)
    check_same_tokenizer(loaded.model, cli.model.tokenizer)
    cli.model.net = loaded.model
    _apply_command_line_generation(cli)
    sub.ckpt_path = None  # loaded above; Lightning must not restore it a second time
    split = cli.datamodule.predict_split
    out = predictions_path(run_folder(cli), split, loaded.step)
    cli.trainer.callbacks.append(PredictionWriter(out, system=str(loaded.source)))


def _apply_command_line_generation(cli) -> None:
    """Lightning merges a checkpoint's hyperparameters over the command line; the decoding settings the
    user gave (--model.generation.*, in a --config file or a flag) still win for prediction."""
    try:
        raw = cli.parser.parse_args(sys.argv[1:], defaults=False)
    except SystemExit:  # the full parse already succeeded; nothing to add
        return
    given = (raw.get(cli.subcommand) or {}).get("model", {}).get("generation")
    if given:
        values = given.as_dict() if hasattr(given, "as_dict") else dict(given)
        cli.model.generation_config = replace(cli.model.generation_config, **values)


class PredictionWriter(pl.Callback):
    """Collects each predict batch's answers as prediction rows; rank 0 writes them all at the end."""

    def __init__(self, out: str | Path, system: str | None = None) -> None:
        self.out = Path(out)
        self.system = system
        self.rows: list[PredictionRow] = []

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.rows.extend(rows_from_batch(batch, outputs, system=self.system))

    def on_predict_end(self, trainer, pl_module) -> None:
        rows = gather_rows(self.rows)
        if not trainer.is_global_zero:
            return
        replaced = self.out.exists()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        write_predictions(self.out, rows)
        print(f"paralm predict: {len(rows)} answers -> {self.out}" + (" (replaced)" if replaced else ""),
              file=sys.stderr)

