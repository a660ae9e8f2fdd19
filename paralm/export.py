"""`paralm export CKPT --out DIR`: a checkpoint -> safetensors + peft adapter folder + config.

The result loads without Lightning: `SpeechLM.from_export(DIR)` rebuilds the model with identical
outputs, and `DIR/adapter` loads with `PeftModel.from_pretrained(base_llm, DIR/adapter)`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from paralm.fault.exits import UserError

if TYPE_CHECKING:
    from paralm.model.speech_lm import SpeechLM


def load_trained(ckpt_path: str | Path) -> SpeechLM:
    """A SpeechLM built from a checkpoint's stored config with its trained weights loaded strictly.

    torch and the model are imported here, after the path is checked, so a wrong path is reported at once."""
    if not Path(ckpt_path).is_file():
        raise UserError(f"checkpoint {ckpt_path} does not exist (give a .ckpt written by `paralm fit`)")
    from paralm.checkpointing import load_verified
    from paralm.dataclass_io import from_dict
    from paralm.model.config import SpeechLMConfig
    from paralm.model.llm import build_tokenizer
    from paralm.model.speech_lm import SpeechLM

    ckpt = load_verified(ckpt_path)
    hp = ckpt.get("hyper_parameters", {})
    if "model" not in hp:
        raise UserError(f"{ckpt_path}: no model config in hyper_parameters; not a paralm checkpoint")
    cfg = from_dict(SpeechLMConfig, hp["model"])
    net = SpeechLM.from_config(cfg, tokenizer=build_tokenizer(cfg.llm, cfg.placeholder_token))
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items()}
    net.load_trainable_state_dict(state, strict=True)
    return net


def export_checkpoint(ckpt_path: str | Path, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    net = load_trained(ckpt_path)
    net.export(out)
    (out / "export_info.json").write_text(json.dumps({"checkpoint": str(ckpt_path)}, indent=2))
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="paralm export", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a .ckpt written by paralm fit")
    p.add_argument("--out", required=True, help="output folder (created)")
    args = p.parse_args(argv)
    out = export_checkpoint(args.checkpoint, args.out)
    print(f"exported {args.checkpoint} -> {out}")
    return 0
