"""Shared helpers for the model tests: tiny clips, prompts with placeholder runs, a next-token loss.

Holds no tests itself; the test_model_* files import it.
"""

from __future__ import annotations

import torch
from torch import nn

from paralm.audio import AudioTokenSpec, log_mel


def clip_features(spec: AudioTokenSpec, seconds: list[float], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random-noise clips of the given durations -> padded features (B, C, T_max) and lengths (B,)."""
    gen = torch.Generator().manual_seed(seed)
    feats = []
    for s in seconds:
        wav = torch.randn(int(s * spec.features.sample_rate), generator=gen) * 0.1
        feats.append(log_mel(wav, spec.features))
    return pad_features(feats)


def pad_features(feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """List of (C, T_i) -> (B, C, max T_i) zero-padded, lengths (B,)."""
    t_max = max(f.shape[1] for f in feats)
    padded = torch.stack([nn.functional.pad(f, (0, t_max - f.shape[1])) for f in feats])
    return padded, torch.tensor([f.shape[1] for f in feats])


def audio_tokens(spec: AudioTokenSpec, n_feature_frames: int) -> int:
    return -(-spec.encoder_frames_from_features(n_feature_frames) // spec.stack)


def prompt_batch(model, questions: list[str], feature_lengths: torch.Tensor, answers: list[str] | None = None,
                 padding_side: str = "left") -> dict[str, torch.Tensor]:
    """Chat-formatted prompts (audio run, then question), optional answers; labels -100 outside answers."""
    tok, spec = model.tokenizer, model.audio_token_spec()
    rows, label_rows = [], []
    for i, question in enumerate(questions):
        run = spec.placeholder_token * audio_tokens(spec, int(feature_lengths[i]))
        user = [{"role": "user", "content": run + question}]
        prompt = tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        ids = tok.encode(prompt, add_special_tokens=False)
        labels = [-100] * len(ids)
        if answers is not None:
            full = tok.apply_chat_template(user + [{"role": "assistant", "content": answers[i]}], tokenize=False)
            full_ids = tok.encode(full, add_special_tokens=False)
            assert full_ids[: len(ids)] == ids, "generation prompt must prefix the full conversation"
            answer_ids = full_ids[len(ids):]  # answer text + end of turn
            ids = ids + answer_ids
            labels = labels + answer_ids
        rows.append(ids)
        label_rows.append(labels)
    return _pad_rows(rows, label_rows, tok.pad_token_id, padding_side)


def _pad_rows(rows, label_rows, pad_id: int, side: str) -> dict[str, torch.Tensor]:
    width = max(len(r) for r in rows)
    out = {"input_ids": [], "attention_mask": [], "labels": []}
    for ids, labels in zip(rows, label_rows, strict=True):
        n_pad = width - len(ids)
        parts = {"input_ids": (ids, pad_id), "attention_mask": ([1] * len(ids), 0), "labels": (labels, -100)}
        for key, (values, fill) in parts.items():
            out[key].append([fill] * n_pad + values if side == "left" else values + [fill] * n_pad)
    return {k: torch.tensor(v) for k, v in out.items()}


def next_token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of position t predicting label t+1 (labels -100 ignored)."""
    return nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1), ignore_index=-100
    )
