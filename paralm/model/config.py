"""Dataclass configs for the Speech-LLM: what to load, how big, and what trains.

Sizes that follow from the loaded models (encoder width, LLM hidden size, vocabulary) are never fields
here: the builders read them from the models so a config cannot disagree with its weights. Checks that
need the file system (does the folder exist?) happen at load time, so any config parses without its
model folders.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from paralm.dataclass_io import from_dict

TRAINABLE_CHOICES = ("frozen", "lora", "full")
PROJECTOR_TRAINABLE_CHOICES = ("frozen", "full")


def check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    """One-line error naming the bad value and the valid choices."""
    if value not in choices:
        raise ValueError(f"{what}={value!r} is not valid; choose one of: {', '.join(choices)}")


def check_one_source(what: str, path: str | None, config: dict | None) -> None:
    """A model comes either from a local folder or from a config dict (random init), never both."""
    if (path is None) == (config is None):
        given = "both" if path is not None else "neither"
        raise ValueError(f"{what}: set exactly one of `path` (local folder) or `config` (random init); got {given}")


@dataclass
class LoraSettings:
    """Low-rank adapter settings for one component.

    Args:
        r: rank of the LoRA update matrices.
        alpha: LoRA scaling numerator (update is scaled by alpha / r).
        dropout: dropout on the LoRA input path during training.
        target_modules: leaf module names to adapt (e.g. ["q_proj", "v_proj"]); None picks the attention
            projections found in the model by name.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] | None = None

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"lora.r must be >= 1, got {self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora.dropout must be in [0, 1), got {self.dropout}")


@dataclass
class EncoderConfig:
    """The speech encoder.

    Args:
        name: encoder family from the registry (whisper | hf_audio).
        path: local Hugging Face folder to load weights from (never downloads).
        config: architecture dict for a randomly initialised encoder (tests, CPU demos).
        trainable: frozen | lora | full.
        lora: adapter settings used when trainable is "lora".
        chunk_seconds: clips longer than this are encoded in chunks of this length and the outputs
            concatenated (Whisper is capped at its 30-s window); 0 disables chunking where allowed.
    """

    name: str = "whisper"
    path: str | None = None
    config: dict[str, Any] | None = None
    trainable: str = "frozen"
    lora: LoraSettings = field(default_factory=LoraSettings)
    chunk_seconds: float = 30.0

    def __post_init__(self) -> None:
        check_choice("encoder.trainable", self.trainable, TRAINABLE_CHOICES)
        check_one_source("encoder", self.path, self.config)
        if self.chunk_seconds < 0:
            raise ValueError(f"encoder.chunk_seconds must be >= 0, got {self.chunk_seconds}")
        if isinstance(self.lora, dict):
            self.lora = LoraSettings(**self.lora)


@dataclass
class ProjectorConfig:
    """The adapter from encoder frames to LLM embeddings.

    Args:
        name: projector from the registry (stack_mlp | gated_mlp | conv).
        stack: k, encoder frames merged into one audio token (tokens = ceil(frames / k)).
        hidden_size: inner width of the MLP; None uses the LLM hidden size.
        dropout: dropout inside the projector during training.
        trainable: frozen | full.
    """

    name: str = "stack_mlp"
    stack: int = 4
    hidden_size: int | None = None
    dropout: float = 0.0
    trainable: str = "full"

    def __post_init__(self) -> None:
        check_choice("projector.trainable", self.trainable, PROJECTOR_TRAINABLE_CHOICES)
        if self.stack < 1:
            raise ValueError(f"projector.stack must be >= 1, got {self.stack}")


@dataclass
class LLMConfig:
    """The decoder-only language model.

    Args:
        path: local Hugging Face folder of a causal LM (never downloads).
        config: architecture dict with `model_type` for a randomly initialised LLM (tests, CPU demos);
            vocab_size and special token ids are filled from the tokenizer when missing.
        tokenizer: tokenizer folder; None = the `path` folder; "builtin:tiny" = a small tokenizer built
            in code (no files).
        trainable: frozen | lora | full.
        lora: adapter settings used when trainable is "lora".
        attn_implementation: attention kernel passed to transformers (sdpa | eager | flash_attention_2).
        chat_template: Jinja chat template overriding the tokenizer's own.
        gguf_file: name of a .gguf file inside `path` to load model and tokenizer from (dequantized to fp32,
            about 25 s for 135M parameters; `paralm model convert --gguf` writes a folder that loads in seconds).
        allow_foreign_tokenizer: accept a `tokenizer` that is not the LLM's own (another folder or a builtin)
            or whose vocabulary does not match the model's embedding table; refused otherwise, because the
            model would read the ids as different words.
        system_line: the chat template's default system line: None keeps it, "" removes it, any other text
            replaces it (a data prompt's `system:` still wins for the prompts it builds).
    """

    path: str | None = None
    config: dict[str, Any] | None = None
    tokenizer: str | None = None
    trainable: str = "lora"
    lora: LoraSettings = field(default_factory=LoraSettings)
    attn_implementation: str = "sdpa"
    chat_template: str | None = None
    gguf_file: str | None = None
    allow_foreign_tokenizer: bool = False
    system_line: str | None = None

    def __post_init__(self) -> None:
        check_choice("llm.trainable", self.trainable, TRAINABLE_CHOICES)
        check_one_source("llm", self.path, self.config)
        if self.gguf_file is not None and self.path is None:
            raise ValueError("llm.gguf_file names a file inside llm.path; set llm.path to its folder")
        if self.tokenizer is None and self.path is None:
            raise ValueError("llm.tokenizer is required when the LLM comes from `config` (no folder to read it from)")
        if isinstance(self.lora, dict):
            self.lora = LoraSettings(**self.lora)


@dataclass
class SpeechLMConfig:
    """A whole Speech-LLM: encoder -> projector -> LLM.

    Args:
        encoder: the speech encoder.
        projector: the frame-stacking adapter.
        llm: the language model and its tokenizer.
        placeholder_token: text form of the audio placeholder; each clip becomes a run of it in the prompt.
        base_init_seed: seed of components created from a config dict (random weights), so a rebuilt model
            has exactly the frozen weights the checkpoint was trained with; trained parts follow the run seed.
    """

    encoder: EncoderConfig
    projector: ProjectorConfig
    llm: LLMConfig
    placeholder_token: str = "<|audio|>"
    base_init_seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpeechLMConfig:
        """Inverse of `to_dict` (nested dicts become the nested dataclasses; an unknown key is an error)."""
        return from_dict(cls, data)
