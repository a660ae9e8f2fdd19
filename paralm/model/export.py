"""Export layout of a trained SpeechLM, and reading it back.

    out_dir/
      config.json                 SpeechLMConfig + AudioTokenSpec + what each file holds
      tokenizer/                  the tokenizer with the placeholder token (ids must not move)
      projector.safetensors       the whole projector (always trained or randomly initialised)
      encoder.safetensors         trained encoder parameters (lora adapters or all), if any
      llm.safetensors             all LLM parameters, only when the LLM trained fully
      adapter/                    peft LoRA folder: PeftModel.from_pretrained(base_llm, "adapter")
      init_weights.safetensors    components built from a config dict (random init): all their
                                  weights, since no model folder holds them

The base LLM passed to `PeftModel.from_pretrained` must have its embeddings resized to the saved
tokenizer (`paralm.model.llm.load_llm` does this).
"""

from __future__ import annotations

import json
from pathlib import Path

from peft import PeftModel, set_peft_model_state_dict
from safetensors.torch import load_file
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from paralm.model.config import SpeechLMConfig
from paralm.model.weights import load_tensors, require_folder, save_tensors

FORMAT = "paralm-speech-lm"
VERSION = 1


def _prefixed(state: dict, prefix: str) -> dict:
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def write(model, out_dir: str | Path, prompt: dict | None = None) -> Path:
    """Write everything needed to rebuild `model` exactly (given the same base model folders).

    prompt: the prompt settings used in training (paralm/prompt_record.py), so that `paralm ask` and
    `paralm serve` prompt the model as training did; None leaves them out (those commands then refuse it)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg: SpeechLMConfig = model.config
    state = model.state_dict(keep_vars=True)
    trained = model.trainable_state_dict()
    files = {"projector": "projector.safetensors"}
    save_tensors(out / files["projector"], _prefixed(state, "projector."))
    encoder_trained = _prefixed(trained, "encoder.")
    if encoder_trained:
        files["encoder"] = "encoder.safetensors"
        save_tensors(out / files["encoder"], encoder_trained)
    if cfg.llm.trainable == "full":
        files["llm"] = "llm.safetensors"
        save_tensors(out / files["llm"], _prefixed(trained, "llm."))
    if isinstance(model.llm, PeftModel):
        files["adapter"] = "adapter"
        model.llm.save_pretrained(str(out / "adapter"), save_embedding_layers=False)
    random_init = [name for name, part in (("encoder.", cfg.encoder), ("llm.", cfg.llm)) if part.path is None]
    if random_init:
        files["init_weights"] = "init_weights.safetensors"
        save_tensors(out / files["init_weights"], {k: v for k, v in state.items() if k.startswith(tuple(random_init))})
    model.tokenizer.save_pretrained(str(out / "tokenizer"))
    meta = {"format": FORMAT, "version": VERSION, "speech_lm": cfg.to_dict(), "files": files,
            "audio_token_spec": model.audio_token_spec().to_dict()}
    (out / "config.json").write_text(json.dumps(meta, indent=2))
    if prompt is not None:
        record_prompt(out, prompt)
    return out


def record_prompt(out_dir: str | Path, prompt: dict) -> None:
    """Add the training prompt settings to an export's config.json (key "prompt")."""
    file = Path(out_dir) / "config.json"
    meta = _meta(out_dir)
    meta["prompt"] = prompt
    file.write_text(json.dumps(meta, indent=2))


def _meta(out_dir: str | Path) -> dict:
    file = require_folder(out_dir, "export") / "config.json"
    if not file.is_file():
        raise FileNotFoundError(f"not an export folder (no config.json): {out_dir}")
    meta = json.loads(file.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{file} is not a {FORMAT} export (format={meta.get('format')!r})")
    return meta


def read_config(out_dir: str | Path) -> SpeechLMConfig:
    return SpeechLMConfig.from_dict(_meta(out_dir)["speech_lm"])


def read_prompt(out_dir: str | Path) -> dict | None:
    """The recorded training prompt settings, or None for an export written without them."""
    return _meta(out_dir).get("prompt")


def read_tokenizer(out_dir: str | Path) -> PreTrainedTokenizerFast:
    return AutoTokenizer.from_pretrained(str(Path(out_dir) / "tokenizer"), local_files_only=True)


def restore(model, out_dir: str | Path) -> None:
    """Load an export into a freshly built model; every trainable parameter must be covered."""
    out = Path(out_dir)
    files = _meta(out)["files"]
    loaded: set[str] = set()
    for key in ("init_weights", "projector", "encoder", "llm"):
        if key in files:
            tensors = load_tensors(out / files[key])
            result = model.load_state_dict(tensors, strict=False)
            if result.unexpected_keys:
                raise KeyError(f"{files[key]} holds tensors this model lacks: {result.unexpected_keys[:5]}")
            loaded.update(tensors)
    if "adapter" in files:
        if not isinstance(model.llm, PeftModel):
            raise ValueError("export has a LoRA adapter but the configured LLM is not trainable='lora'")
        result = set_peft_model_state_dict(model.llm, load_file(str(out / files["adapter"] / "adapter_model.safetensors")))
        if result.unexpected_keys:
            raise KeyError(f"adapter holds tensors this LLM lacks: {result.unexpected_keys[:5]}")
        loaded.update(n for n, _ in model.named_parameters() if n.startswith("llm.") and "lora_" in n)
    missing = sorted(set(model.trainable_state_dict()) - loaded)
    if missing:
        raise KeyError(f"export at {out} does not cover trainable parameters: {missing[:5]}")
