"""End to end: the tiny Speech-LLM learns to answer from the audio alone (same question, 8 clips)."""

from __future__ import annotations

import time

import torch
from modelkit import next_token_loss, prompt_batch

from paralm.model import SpeechLM, tiny_speech_lm_config

ANSWERS = ["calm", "angry", "happy", "sad", "tired", "proud", "bored", "scared"]
QUESTION = "How does the speaker feel?"


def _distinct_clips(n_mels: int, n_frames: int = 100) -> torch.Tensor:
    """(8, n_mels, n_frames) log-mels: clip i lights up its own mel band and has its own rhythm."""
    gen = torch.Generator().manual_seed(0)
    clips = torch.full((len(ANSWERS), n_mels, n_frames), -1.0)
    band = n_mels // len(ANSWERS)
    t = torch.arange(n_frames)
    for i in range(len(ANSWERS)):
        pulse = (torch.sin(t * (i + 1) * 0.2) > 0).float()
        clips[i, i * band:(i + 1) * band] = pulse
    return clips + 0.05 * torch.randn(clips.shape, generator=gen)


def test_model_memorises_answers_from_audio_and_swapping_clips_swaps_answers():
    torch.manual_seed(0)
    model = SpeechLM.from_config(tiny_speech_lm_config(llm_trainable="full", stack=4))
    feats = _distinct_clips(model.audio_token_spec().features.n_mels)
    lengths = torch.full((len(ANSWERS),), feats.shape[-1])
    train = prompt_batch(model, [QUESTION] * 8, lengths, answers=ANSWERS, padding_side="right")
    ask = prompt_batch(model, [QUESTION] * 8, lengths)
    with torch.no_grad():  # the encoder is frozen: encode once, train on cached states
        states, state_lengths = model.encoder(feats, lengths)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    start, answers = time.monotonic(), []
    for step in range(1, 301):
        model.train()
        logits = model(train["input_ids"], train["attention_mask"], feats, lengths,
                       encoder_states=states, encoder_lengths=state_lengths)
        loss = next_token_loss(logits, train["labels"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0:
            answers = model.generate(ask["input_ids"], ask["attention_mask"], feats, lengths, max_new_tokens=8)
            if answers == ANSWERS:
                break
    assert answers == ANSWERS, f"after {step} steps ({time.monotonic() - start:.1f}s), loss {loss.item():.3f}"
    swapped = feats[[1, 0, *range(2, 8)]]
    assert model.generate(ask["input_ids"], ask["attention_mask"], swapped, lengths, max_new_tokens=8)[:3] == [
        "angry", "calm", "happy"]
