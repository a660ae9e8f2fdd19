"""`paralm export CKPT --out DIR`: a checkpoint -> safetensors + peft adapter folder + config.

The result loads without Lightning: `SpeechLM.from_export(DIR)` rebuilds the model with identical
outputs, and `DIR/adapter` loads with `PeftModel.from_pretrained(base_llm, DIR/adapter)`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from paralm.fault.exits import UserError

if TYPE_CHECKING:
    from paralm.model.speech_lm import SpeechLM


def _require_checkpoint(ckpt_path: str | Path) -> None:
    """Checked before torch and the model are imported, so a wrong path is reported at once."""
    if not Path(ckpt_path).is_file():
        raise UserError(f"checkpoint {ckpt_path} does not exist (give a .ckpt written by `paralm fit`)")


def load_trained(ckpt_path: str | Path) -> SpeechLM:
    """A SpeechLM built from a checkpoint's stored config with its trained weights loaded strictly (eval mode).

    The model comes from `paralm.predict.load_for_prediction`, the one loader of checkpoints and exports."""
    _require_checkpoint(ckpt_path)
    from paralm.predict import load_for_prediction

    return load_for_prediction(ckpt_path).model


def export_checkpoint(ckpt_path: str | Path, out_dir: str | Path, configs: list[str] | None = None) -> Path:
    """configs: the training config files (default: the run folder's config.yaml); their data.train_prompt
    is recorded with the export, and without any the export records no prompt (ask/serve refuse it)."""
    out = Path(out_dir)
    _require_checkpoint(ckpt_path)
    from paralm.predict import load_for_prediction  # the one loader; it also reads the training step

    loaded = load_for_prediction(ckpt_path)
    loaded.model.export(out)
    info = {"checkpoint": str(ckpt_path), "global_step": loaded.step}  # names paralm predict's output
    (out / "export_info.json").write_text(json.dumps(info, indent=2))
    _record_training_prompt(ckpt_path, out, configs)
    return out


def _record_training_prompt(ckpt_path: str | Path, out: Path, configs: list[str] | None) -> None:
    from paralm.model.export import record_prompt
    from paralm.prompt_record import find_run_config, prompt_record, train_prompt_from_configs

    files = configs or [f for f in [find_run_config(ckpt_path)] if f is not None]
    if not files:
        print(f"paralm export: no <run>/config.yaml beside {ckpt_path} and no --config: the export records no "
              "prompt settings, so `paralm ask`/`serve` will refuse it", file=sys.stderr)
        return
    record_prompt(out, prompt_record(train_prompt_from_configs(files), files))


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="paralm export", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a .ckpt written by paralm fit")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--config", action="append", default=None,
                   help="training config file(s) whose data.train_prompt is recorded (repeatable; default: "
                        "<run>/config.yaml of the checkpoint)")
    args = p.parse_args(argv)
    out = export_checkpoint(args.checkpoint, args.out, args.config)
    print(f"exported {args.checkpoint} -> {out}")
    return 0
