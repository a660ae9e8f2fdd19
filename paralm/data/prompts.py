"""Prompt modes: the explicit method is a prompt applied at load time, not a separate data set.

plain    : the user turn holds the instruction and the audio placeholder only.
explicit : a metadata block (categorical emotion, arousal / valence / dominance as numbers with
           low / mid / high bins, optionally gender) goes before the instruction.

Where the metadata comes from is part of every run's configuration:
  pred:<annotator>  labels.pred[<annotator>] (training uses out-of-fold predictions, stored under an id
                    such as "<annotator>@oof", so the model learns to trust labels only as much as
                    they deserve); a clip without that annotator's entry gets "unknown" values and is
                    counted by the collator;
  gold              labels.gold: the ORACLE ablation (a warning is logged once and `is_oracle` is set);
  none              no metadata (only valid in plain mode).

The block's text never names the annotator, so a model trained on "<annotator>@oof" sees the same
format when evaluated on "<annotator>".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

PROMPT_MODES = ("plain", "explicit")
AFFECT_DIMENSIONS = ("arousal", "valence", "dominance")
DEFAULT_INSTRUCTION = (
    "Instruction: {question}\nFollow the text instruction based on the following audio: {audio}"
)


@dataclass(frozen=True)
class PromptConfig:
    """How a question becomes the user turn.

    Args:
        mode: "plain" (question only) or "explicit" (metadata block before the instruction).
        metadata: "none", "gold" (oracle) or "pred:<annotator>", e.g. "pred:ser@oof" for out-of-fold
            training labels; ignored in plain mode.
        low: affect values below this are binned "low".
        high: affect values above this are binned "high" (in between: "mid").
        include_gender: add the gender label to the metadata block.
        numbers: write affect values as numbers with their bin ("0.72 (high)"); False writes the bin only,
            a shorter block for small CPU models.
        system: optional system message (empty: none; some chat templates reject a system turn).
        instruction: user-turn template with {question} and {audio} fields.
    """

    mode: str = "plain"
    metadata: str = "none"
    low: float = 0.4
    high: float = 0.6
    include_gender: bool = False
    numbers: bool = True
    system: str = ""
    instruction: str = DEFAULT_INSTRUCTION

    def __post_init__(self) -> None:
        if self.mode not in PROMPT_MODES:
            raise ValueError(f"unknown prompt mode {self.mode!r}; valid: {', '.join(PROMPT_MODES)}")
        parse_metadata_source(self.metadata)
        if self.mode == "explicit" and self.metadata == "none":
            raise ValueError(
                "explicit prompt mode needs a metadata source: 'gold' or 'pred:<annotator>', got 'none'"
            )
        if not self.low <= self.high:
            raise ValueError(f"bin thresholds need low <= high, got low={self.low} high={self.high}")
        for field_name in ("{question}", "{audio}"):
            if field_name not in self.instruction:
                raise ValueError(f"instruction template must contain {field_name}: {self.instruction!r}")

    @property
    def uses_metadata(self) -> bool:
        return self.mode == "explicit"

    @property
    def is_oracle(self) -> bool:
        """True when gold labels are shown to the model (the oracle ablation)."""
        return self.uses_metadata and self.metadata == "gold"

    def describe(self) -> dict:
        """Short description carried in batch metadata and reports."""
        return {
            "mode": self.mode,
            "metadata": self.metadata if self.uses_metadata else "none",
            "oracle": self.is_oracle,
        }


def parse_metadata_source(source: str) -> tuple[str, str | None]:
    """'none' | 'gold' | 'pred:<annotator>' -> (kind, annotator or None)."""
    if source in ("none", "gold"):
        return source, None
    if source.startswith("pred:") and len(source) > len("pred:"):
        return "pred", source[len("pred:") :]
    raise ValueError(f"unknown metadata source {source!r}; valid: none, gold, pred:<annotator>")


def lookup_metadata(meta: dict, source: str) -> dict | None:
    """The label dict a metadata source points at in a sample's meta, or None when it is absent.

    `meta["cue_labels"]`, when present, replaces `meta["labels"]` here only: the permuted-metadata
    control (paralm/data/loader.py `MetadataSwapReader`) shows another clip's cues in the block while
    the clip's own gold labels stay for scoring."""
    kind, annotator = parse_metadata_source(source)
    labels = meta["cue_labels"] if "cue_labels" in meta else (meta.get("labels") or {})
    if kind == "gold":
        return labels.get("gold")
    if kind == "pred":
        return (labels.get("pred") or {}).get(annotator)
    return None


def affect_bin(value: float, low: float = 0.4, high: float = 0.6) -> str:
    """'low' below `low`, 'high' above `high`, 'mid' otherwise."""
    if value < low:
        return "low"
    if value > high:
        return "high"
    return "mid"


def metadata_block(
    meta: dict, source: str, *, low: float = 0.4, high: float = 0.6, include_gender: bool = False,
    numbers: bool = True,
) -> str:
    """One line of paralinguistic cues; unknown values (absent annotator or field) say "unknown"."""
    labels = lookup_metadata(meta, source) or {}
    parts = [f"emotion: {labels.get('emotion') or 'unknown'}"]
    for dim in AFFECT_DIMENSIONS:
        value = labels.get(dim)
        if value is None:
            text = "unknown"
        elif numbers:
            text = f"{float(value):.2f} ({affect_bin(float(value), low, high)})"
        else:
            text = affect_bin(float(value), low, high)
        parts.append(f"{dim}: {text}")
    if include_gender:
        parts.append(f"gender: {labels.get('gender') or 'unknown'}")
    return "Paralinguistic cues: " + "; ".join(parts)


_oracle_warned = False


def warn_if_oracle(cfg: PromptConfig) -> None:
    """Log once per process that gold labels are visible to the model."""
    global _oracle_warned
    if cfg.is_oracle and not _oracle_warned:
        log.warning(
            "ORACLE: prompts show gold labels (metadata='gold'); results are an upper bound, not a cascade"
        )
        _oracle_warned = True


def build_messages(
    question: str, meta: dict, cfg: PromptConfig, placeholder: str = "<|audio|>"
) -> list[dict]:
    """Chat messages for one QA item; the user turn contains `placeholder` exactly once."""
    content = cfg.instruction.format(question=question.strip(), audio=placeholder)
    if cfg.uses_metadata:
        block = metadata_block(
            meta, cfg.metadata, low=cfg.low, high=cfg.high, include_gender=cfg.include_gender,
            numbers=cfg.numbers,
        )
        content = f"{block}\n{content}"
    messages = [{"role": "system", "content": cfg.system}] if cfg.system else []
    messages.append({"role": "user", "content": content})
    return messages


def render_plain(messages: list[dict]) -> str:
    """Fallback for tokenizers without a chat template; ends where the answer starts."""
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant: "


def render_prompt(tokenizer, messages: list[dict]) -> str:
    """The prompt text up to the answer: the tokenizer's chat template if it has one, else plain."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return render_plain(messages)
