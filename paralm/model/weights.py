"""Reading part of a checkpoint folder, and writing tensor dicts as safetensors.

Why not `from_pretrained` for the Whisper encoder: a Whisper folder holds the whole encoder-decoder,
and only the encoder is needed. Reading just the `*encoder.*` tensors from the (possibly sharded)
safetensors files avoids materialising the decoder (half of large-v3) at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

_ALIASES_KEY = "paralm_aliases"


def require_folder(path: str | Path, what: str) -> Path:
    """The folder as a Path, or an error naming the missing path."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {folder}")
    return folder


def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [folder / s for s in shards]
    files = sorted(folder.glob("*.safetensors"))
    if files:
        return files
    files = sorted(folder.glob("pytorch_model*.bin"))
    if files:
        return files
    raise FileNotFoundError(f"no *.safetensors or pytorch_model*.bin weights in {folder}")


def _keys_and_reader(file: Path):
    if file.suffix == ".safetensors":
        handle = safe_open(str(file), framework="pt")
        return list(handle.keys()), handle.get_tensor
    state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    return list(state.keys()), state.__getitem__


def find_prefix(keys: list[str], anchor: str) -> str:
    """Prefix in front of `anchor` ("model.encoder." for "model.encoder.conv1.weight"), or an error."""
    for key in keys:
        if key.endswith(anchor):
            return key[: len(key) - len(anchor)]
    raise KeyError(f"no tensor named '*{anchor}' in the checkpoint (first keys: {keys[:5]})")


def read_submodule_state(folder: str | Path, anchor: str) -> dict[str, torch.Tensor]:
    """Tensors of the submodule that owns `anchor`, with its prefix stripped.

    Example: anchor "conv1.weight" in a WhisperForConditionalGeneration folder finds the prefix
    "model.encoder." and returns {"conv1.weight": ..., "layers.0....": ...} for WhisperEncoder.
    """
    files = _weight_files(require_folder(folder, "encoder"))
    readers = [_keys_and_reader(f) for f in files]
    prefix = find_prefix([k for keys, _ in readers for k in keys], anchor)
    state = {}
    for keys, get in readers:
        for key in keys:
            if key.startswith(prefix):
                state[key[len(prefix):]] = get(key)
    return state


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    """safetensors file; tensors sharing storage (tied embeddings) are written once and aliased."""
    unique: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    first_by_ptr: dict[tuple[int, tuple[int, ...]], str] = {}
    for name, tensor in tensors.items():
        key = (tensor.data_ptr(), tuple(tensor.shape))
        if key in first_by_ptr:
            aliases[name] = first_by_ptr[key]
            continue
        first_by_ptr[key] = name
        unique[name] = tensor.detach().contiguous().cpu()
    save_file(unique, str(path), metadata={_ALIASES_KEY: json.dumps(aliases)})


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Inverse of `save_tensors` (aliases restored as the same tensor)."""
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    for alias, original in json.loads(meta.get(_ALIASES_KEY, "{}")).items():
        tensors[alias] = tensors[original]
    return tensors
