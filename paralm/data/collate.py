"""Collate decoded samples into a typed `Batch`.

Why here (in dataloader workers) and at natural length: log-mel is cheap and parallel in workers, and
padding only to the longest clip of a duration-bucketed batch keeps most encoder frames useful;
padding every clip to 30 s wastes most of the encoder's work on short clips.

Per item: log-mel (C, T_i) -> pad to (C, max T_i); prompt = chat template of the user turn with the
audio placeholder expanded to exactly `audio_spec.num_tokens(n_samples)` placeholder ids; answer =
answer ids + eos.
  training   : input_ids = prompt + answer, labels = -100 on the prompt and padding, answer ids on the
               answer; right padding.
  generation : input_ids = prompt only, left padding (so new tokens append on the right of every row),
               labels all -100; the answers stay in `batch.references`.
With a feature cache (paralm/data/feature_store.py) items carry encoder states instead of audio: the
batch then holds encoder_states (B, F, D) + encoder_lengths, and features are empty (B, C, 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch.nn.utils.rnn import pad_sequence

from paralm.audio import AudioTokenSpec, log_mel, num_feature_frames
from paralm.data.batch import Batch
from paralm.data.prompts import PromptConfig, build_messages, lookup_metadata, render_prompt, warn_if_oracle
from paralm.perf.chunked_ce import IGNORE_INDEX

if TYPE_CHECKING:
    from paralm.data.reader import LoadedSample


@dataclass
class FeedItem:
    """One decoded sample and which of its QA pairs to use.

    Args:
        sample: the decoded clip and its metadata.
        qa_index: index into sample.meta["qa"].
        source: name of the source it came from.
        is_pad: a filler copy (keeps batch or rank counts equal); metrics must skip it.
    """

    sample: LoadedSample
    qa_index: int
    source: str
    is_pad: bool = False


@dataclass
class _Encoded:
    prompt: list[int]
    answer: list[int]
    features: torch.Tensor
    n_tokens: int
    missing: bool
    n_samples: int = 0
    cached: bool = False  # `features` holds cached encoder states (F, D) instead of log-mel (C, T)


class Collator:
    """list[FeedItem] -> Batch (see paralm.data.batch for shapes).

    Args:
        tokenizer: a transformers tokenizer that maps `audio_spec.placeholder_token` to
            `audio_spec.placeholder_token_id` and has an eos token.
        audio_spec: how many placeholder tokens a clip becomes, and the feature front end.
        prompt: prompt mode and metadata source.
        for_generation: left padding and no answer in input_ids.
    """

    def __init__(
        self,
        tokenizer,
        audio_spec: AudioTokenSpec,
        prompt: PromptConfig | None = None,
        for_generation: bool = False,
    ) -> None:
        self.tokenizer = tokenizer
        self.audio_spec = audio_spec
        self.prompt = prompt or PromptConfig()
        self.for_generation = for_generation
        mapped = tokenizer.convert_tokens_to_ids(audio_spec.placeholder_token)
        if mapped != audio_spec.placeholder_token_id or mapped is None or mapped < 0:
            raise ValueError(
                f"tokenizer maps placeholder {audio_spec.placeholder_token!r} to {mapped}, but the audio spec "
                f"says {audio_spec.placeholder_token_id}; add it as a special token and rebuild the spec"
            )
        if tokenizer.eos_token_id is None:
            raise ValueError("tokenizer has no eos token; answers need one to mark their end")
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else tokenizer.eos_token_id)
        self._use_special = not getattr(tokenizer, "chat_template", None)
        warn_if_oracle(self.prompt)

    def __call__(self, items: list[FeedItem]) -> Batch:
        return self.collate(items)[0]

    def collate(self, items: list[FeedItem]) -> tuple[Batch, int]:
        """The batch and how many items lacked their metadata source (explicit mode only)."""
        if not items:
            raise ValueError("cannot collate an empty list of items")
        prompts, answers = self._tokenize(items)
        encoded = [self._encode(it, p, a) for it, p, a in zip(items, prompts, answers, strict=True)]
        input_ids, attention_mask, labels = self._pad_text(encoded)
        batch = Batch(
            input_ids=input_ids,
            attention_mask=attention_mask,
            labels=labels,
            **_audio_fields(encoded, self.audio_spec),
            audio_token_counts=torch.tensor([e.n_tokens for e in encoded], dtype=torch.long),
            keys=[it.sample.key for it in items],
            sources=[it.source for it in items],
            question_types=[str(self._qa(it).get("type", "")) for it in items],
            questions=[str(self._qa(it)["question"]) for it in items],
            references=[str(self._qa(it)["answer"]) for it in items],
            meta=[self._item_meta(it, e) for it, e in zip(items, encoded, strict=True)],
            audio_seconds=torch.tensor(
                [e.n_samples / it.sample.sample_rate for it, e in zip(items, encoded, strict=True)],
                dtype=torch.float32,
            ),
            prompt_lengths=torch.tensor([len(e.prompt) for e in encoded], dtype=torch.long),
            is_pad=torch.tensor([it.is_pad for it in items], dtype=torch.bool),
        )
        return batch, sum(e.missing for e in encoded)

    @staticmethod
    def _qa(item: FeedItem) -> dict:
        return item.sample.meta["qa"][item.qa_index]

    def _tokenize(self, items: list[FeedItem]) -> tuple[list[list[int]], list[list[int]]]:
        """Prompt ids (one placeholder each) and answer ids (eos appended) of every item.

        One tokenizer call per batch for prompts and one for answers: the per-call overhead of a
        transformers tokenizer costs more than encoding a short text, and the ids are the same.
        """
        placeholder = self.audio_spec.placeholder_token
        texts = [
            render_prompt(
                self.tokenizer,
                build_messages(self._qa(it)["question"], it.sample.meta, self.prompt, placeholder),
            )
            for it in items
        ]
        prompts = self.tokenizer(texts, add_special_tokens=self._use_special)["input_ids"]
        answers = self.tokenizer([str(self._qa(it)["answer"]) for it in items], add_special_tokens=False)
        eos = int(self.tokenizer.eos_token_id)
        return [list(p) for p in prompts], [list(a) + [eos] for a in answers["input_ids"]]

    def _encode(self, item: FeedItem, prompt_ids: list[int], answer_ids: list[int]) -> _Encoded:
        spec = self.audio_spec
        n_samples = _num_samples(item.sample)
        n_tokens = spec.num_tokens(n_samples)
        prompt = _expand_placeholder(prompt_ids, spec.placeholder_token_id, n_tokens)
        missing = (
            self.prompt.uses_metadata and lookup_metadata(item.sample.meta, self.prompt.metadata) is None
        )
        states = getattr(item.sample, "encoder_states", None)  # set by the feature cache's reader
        feats = log_mel(item.sample.audio, spec.features) if states is None else states  # (C, T_i) | (F_i, D)
        return _Encoded(prompt, answer_ids, feats, n_tokens, missing, n_samples, cached=states is not None)

    def _item_meta(self, item: FeedItem, enc: _Encoded) -> dict:
        meta, qa = item.sample.meta, self._qa(item)
        return {
            "key": item.sample.key,
            "shard": item.sample.shard,
            "corpus": meta.get("corpus", ""),
            "qa_index": item.qa_index,
            "origin": qa.get("origin", ""),
            "asks": qa.get("asks"),
            "labels": meta.get("labels", {}),
            "neutral_text": meta.get("neutral_text"),
            "is_pad": item.is_pad,
            "prompt": self.prompt.describe(),
            "metadata_missing": enc.missing,
            **({"cue_labels": meta["cue_labels"]} if "cue_labels" in meta else {}),  # permuted-metadata control
        }

    def _pad_text(self, encoded: list[_Encoded]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, L) input_ids, attention_mask, labels; right padding for training, left for generation."""
        rows, targets = [], []
        for e in encoded:
            if self.for_generation:
                rows.append(e.prompt)
                targets.append([IGNORE_INDEX] * len(e.prompt))
            else:
                rows.append(e.prompt + e.answer)
                targets.append([IGNORE_INDEX] * len(e.prompt) + e.answer)
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        for b, (row, tgt) in enumerate(zip(rows, targets, strict=True)):
            span = slice(width - len(row), width) if self.for_generation else slice(0, len(row))
            ids[b, span] = torch.tensor(row, dtype=torch.long)
            mask[b, span] = 1
            labels[b, span] = torch.tensor(tgt, dtype=torch.long)
        return ids, mask, labels


def _expand_placeholder(ids: list[int], placeholder_id: int, n: int) -> list[int]:
    """Replace the single placeholder id in `ids` with a run of `n` of them."""
    where = [i for i, t in enumerate(ids) if t == placeholder_id]
    if len(where) != 1:
        raise ValueError(
            f"the rendered prompt holds the audio placeholder id {placeholder_id} {len(where)} times, "
            "expected exactly once; check the chat template and that the question text has no placeholder"
        )
    i = where[0]
    return ids[:i] + [placeholder_id] * n + ids[i + 1 :]


def _num_samples(sample) -> int:
    """Audio samples of a clip (a cached sample carries the count; its audio is not decoded)."""
    cached = getattr(sample, "encoder_states", None) is not None
    return int(sample.n_samples) if cached else len(sample.audio)


def _audio_fields(encoded: list[_Encoded], spec: AudioTokenSpec) -> dict[str, torch.Tensor]:
    """Log-mel (B, C, T) + lengths, or cached encoder states (B, F, D) + lengths with empty features."""
    cached = [e.cached for e in encoded]
    if not any(cached):
        return {
            "features": _pad_features([e.features for e in encoded]),
            "feature_lengths": torch.tensor([e.features.shape[-1] for e in encoded], dtype=torch.long),
        }
    if not all(cached):
        raise ValueError(
            "a batch mixes cached encoder states and decoded audio; fill the feature cache for "
            "every source of this loader (paralm.features_cache.ensure_feature_cache)"
        )
    channels = spec.features.n_mels if spec.features.kind == "log_mel" else 1
    return {
        "features": torch.zeros(len(encoded), channels, 0),
        "feature_lengths": torch.tensor(
            [num_feature_frames(spec.features, e.n_samples) for e in encoded], dtype=torch.long
        ),
        "encoder_states": pad_sequence([e.features for e in encoded], batch_first=True),  # (B, F, D)
        "encoder_lengths": torch.tensor([e.features.shape[0] for e in encoded], dtype=torch.long),
    }


def _pad_features(feats: list[torch.Tensor]) -> torch.Tensor:
    """list of (C, T_i) -> (B, C, max T_i), zeros past each clip."""
    channels = feats[0].shape[0]
    width = max(f.shape[-1] for f in feats)
    out = torch.zeros(len(feats), channels, width, dtype=torch.float32)
    for b, f in enumerate(feats):
        out[b, :, : f.shape[-1]] = f
    return out
