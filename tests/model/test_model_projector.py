"""Projectors: token counts, shapes, padding invariance; the spec agrees with encoder + projector."""

from __future__ import annotations

import pytest
import torch
from modelkit import clip_features

from paralm.model import PROJECTORS, ProjectorConfig, SpeechLM, build_projector, tiny_speech_lm_config


@pytest.mark.parametrize("name", sorted(PROJECTORS))
def test_projector_tokens_are_ceil_of_frames_over_stack(name):
    torch.manual_seed(0)
    proj = build_projector(ProjectorConfig(name=name, stack=3), in_size=16, out_size=24).eval()
    frames = torch.randn(3, 10, 16)
    tokens, counts = proj(frames, torch.tensor([10, 7, 1]))
    assert tokens.shape == (3, 4, 24)
    assert counts.tolist() == [4, 3, 1]


@pytest.mark.parametrize("name", sorted(PROJECTORS))
def test_projector_output_ignores_frames_past_a_clip_and_batch_padding(name):
    torch.manual_seed(0)
    proj = build_projector(ProjectorConfig(name=name, stack=4), in_size=8, out_size=12).eval()
    clip = torch.randn(1, 7, 8)
    garbage = torch.cat([clip, torch.randn(1, 13, 8) * 100], dim=1)  # junk past the clip's 7 frames
    other = torch.randn(1, 20, 8)
    with torch.no_grad():
        alone, _ = proj(clip, torch.tensor([7]))
        batched, counts = proj(torch.cat([garbage, other]), torch.tensor([7, 20]))
    assert counts.tolist() == [2, 5]
    assert (alone[0] - batched[0, :2]).abs().max() < 1e-6


def test_projector_is_sized_from_the_models_not_the_config():
    proj = build_projector(ProjectorConfig(name="stack_mlp", stack=2, hidden_size=5), in_size=3, out_size=7)
    assert proj.net[0].in_features == 6 and proj.net[0].out_features == 5 and proj.net[-1].out_features == 7


def test_unknown_projector_name_lists_the_valid_choices():
    with pytest.raises(ValueError, match="unknown projector 'qformer'; valid: conv, gated_mlp, stack_mlp"):
        build_projector(ProjectorConfig(name="qformer"), 4, 4)


@pytest.mark.parametrize("encoder", ["whisper", "hf_audio"])
@pytest.mark.parametrize("projector", sorted(PROJECTORS))
def test_audio_token_spec_matches_encoder_plus_projector(encoder, projector):
    torch.manual_seed(0)
    model = SpeechLM.from_config(tiny_speech_lm_config(encoder=encoder, projector=projector, stack=3,
                                                       chunk_seconds=1.0))
    spec = model.audio_token_spec()
    seconds = [0.05, 0.31, 0.99, 1.0, 1.37, 2.6]  # crosses the 1-s chunk boundary twice
    feats, lengths = clip_features(spec, seconds)
    with torch.no_grad():
        tokens, counts = model.encode_audio(feats, lengths)
    expected = [spec.num_tokens(int(s * spec.features.sample_rate)) for s in seconds]
    assert counts.tolist() == expected
    assert tokens.shape == (len(seconds), max(expected), model.llm.config.hidden_size)
