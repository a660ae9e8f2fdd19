"""Speech encoders: real-length Whisper, padding invariance, chunking, wav2vec2 through the same interface."""

from __future__ import annotations

import pytest
import torch
from modelkit import clip_features, pad_features
from transformers import WhisperConfig, WhisperForConditionalGeneration

from paralm.audio import AudioTokenSpec
from paralm.model import EncoderConfig, build_encoder, tiny_wav2vec2_config, tiny_whisper_config
from paralm.model.encoder import encoder_layout


def _spec(encoder) -> AudioTokenSpec:
    return AudioTokenSpec(features=encoder.feature_spec(), encoder_convs=encoder.token_convs(),
                          chunk_frames=encoder.chunk_frames)


@pytest.fixture(scope="module")
def whisper():
    torch.manual_seed(0)
    return build_encoder(EncoderConfig(config=tiny_whisper_config())).eval()


def test_whisper_runs_on_the_longest_clip_not_a_30s_window(whisper):
    feats, lengths = clip_features(_spec(whisper), [2.0, 17.0])
    seen = []
    hook = whisper.model.conv1.register_forward_hook(lambda m, args, out: seen.append(args[0].shape))
    with torch.no_grad():
        frames, frame_lengths = whisper(feats, lengths)
    hook.remove()
    assert seen == [torch.Size([2, 80, 1700])]
    assert frames.shape == (2, 850, whisper.hidden_size)
    assert frame_lengths.tolist() == [100, 850]
    assert frames[0, 100:].abs().max() == 0 and frames[0, :100].abs().max() > 0


def test_padding_does_not_change_clip_output(whisper):
    short, short_len = clip_features(_spec(whisper), [2.0], seed=1)
    long_, _ = clip_features(_spec(whisper), [25.0], seed=2)
    batch, lengths = pad_features([short[0], long_[0]])
    with torch.no_grad():
        alone, _ = whisper(short, short_len)
        together, _ = whisper(batch, lengths)
    assert (alone[0] - together[0, :100]).abs().max() < 1e-5


def test_matches_transformers_whisper_encoder_on_a_full_window(whisper):
    feats, lengths = clip_features(_spec(whisper), [30.0], seed=3)
    with torch.no_grad():
        ours, _ = whisper(feats, lengths)
        reference = whisper.model(feats).last_hidden_state  # HF's own forward, which needs exactly 3000 frames
    assert ours.shape == reference.shape
    assert (ours - reference).abs().max() < 1e-4


def test_long_clip_is_chunked_and_frame_count_matches_spec(whisper):
    spec = _spec(whisper)
    feats, lengths = clip_features(spec, [45.0, 3.0], seed=4)
    with torch.no_grad():
        frames, frame_lengths = whisper(feats, lengths)
        first_window, _ = whisper(feats[:1, :, :3000], torch.tensor([3000]))
        second_window, _ = whisper(feats[:1, :, 3000:4500].contiguous(), torch.tensor([1500]))
    assert frame_lengths.tolist() == [spec.encoder_frames_from_features(4500), spec.encoder_frames_from_features(300)]
    assert frame_lengths.tolist() == [2250, 150]
    assert frames.shape[1] == 2250
    assert (frames[0, :1500] - first_window[0]).abs().max() < 1e-5
    assert (frames[0, 1500:2250] - second_window[0]).abs().max() < 1e-5


def test_shorter_chunk_seconds_splits_earlier():
    cfg = EncoderConfig(config=tiny_whisper_config(), chunk_seconds=10.0)
    assert encoder_layout(cfg).chunk_frames == 1000
    assert encoder_layout(EncoderConfig(config=tiny_whisper_config(), chunk_seconds=60.0)).chunk_frames == 3000


def test_whisper_loads_encoder_from_a_full_model_folder(tmp_path, whisper):
    torch.manual_seed(1)
    full = WhisperForConditionalGeneration(WhisperConfig(**tiny_whisper_config()))
    full.save_pretrained(tmp_path / "whisper")
    loaded = build_encoder(EncoderConfig(path=str(tmp_path / "whisper"))).eval()
    feats, lengths = clip_features(_spec(whisper), [30.0], seed=5)
    with torch.no_grad():
        ours, _ = loaded(feats, lengths)
        reference = full.model.encoder(feats).last_hidden_state
    assert (ours - reference).abs().max() < 1e-4


def test_hf_audio_wav2vec2_works_through_the_same_interface():
    torch.manual_seed(0)
    enc = build_encoder(EncoderConfig(name="hf_audio", config=tiny_wav2vec2_config())).eval()
    spec = _spec(enc)
    assert enc.feature_spec().kind == "waveform" and enc.hidden_size == 32
    feats, lengths = clip_features(spec, [0.5, 1.3], seed=6)
    assert feats.shape[1] == 1
    with torch.no_grad():
        frames, frame_lengths = enc(feats, lengths)
        alone, _ = enc(feats[:1, :, : int(lengths[0])], lengths[:1])
    expected = enc.model._get_feat_extract_output_lengths(lengths).tolist()
    assert frame_lengths.tolist() == expected == [spec.encoder_frames(int(n)) for n in lengths]
    assert frames.shape == (2, max(expected), 32)
    assert (frames[0, : expected[0]] - alone[0]).abs().max() < 1e-4


def test_unknown_encoder_name_lists_the_valid_choices():
    with pytest.raises(ValueError, match="unknown encoder 'conformer'; valid: hf_audio, whisper"):
        build_encoder(EncoderConfig(name="conformer", config=tiny_whisper_config()))


def test_missing_encoder_folder_names_the_path(tmp_path):
    missing = tmp_path / "no-such-whisper"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        build_encoder(EncoderConfig(path=str(missing)))
