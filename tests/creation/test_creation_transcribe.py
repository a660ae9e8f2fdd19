"""`paralm data transcribe`: a tiny random Whisper (text is garbage; the plumbing is what is tested)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import pre_tokenizers
from transformers import (
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperTokenizer,
)

from paralm.creation.stage import encode_audio
from paralm.creation.transcribe import (
    AsrConfig,
    WhisperTranscriber,
    apply_transcript,
    clean_words,
    main,
    transcribe,
)
from paralm.data.index import ShardIndex
from paralm.data.reader import iter_samples
from paralm.data.schema import validate_sample
from paralm.data.shards import write_shards

SR = 16000
SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>", "<|startoflm|>",
            "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]




def build_whisper(folder: Path, alignment_heads: bool = True) -> Path:
    """A byte-level BPE tokenizer with Whisper's special and timestamp tokens + a 1-layer random Whisper."""
    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    merges = [("Ġ", "h"), ("e", "l"), ("Ġh", "el")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = WhisperTokenizer(vocab=vocab, merges=merges, pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": SPECIALS + [f"<|{i * 0.02:.2f}|>" for i in range(1501)]})
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIALS}
    eos, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    cfg = WhisperConfig(vocab_size=len(tok), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_target_positions=64,
                        pad_token_id=eos, bos_token_id=eos, eos_token_id=eos, decoder_start_token_id=sot)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(cfg)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot, eos_token_id=eos, pad_token_id=eos, bos_token_id=eos,
        no_timestamps_token_id=ids["<|notimestamps|>"], is_multilingual=False, max_initial_timestamp_index=50,
        max_length=64, begin_suppress_tokens=[], suppress_tokens=[],
        alignment_heads=[[0, 0], [0, 1]] if alignment_heads else None)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def whisper(tmp_path_factory) -> Path:
    return build_whisper(tmp_path_factory.mktemp("whisper"))


def make_set(root: Path) -> Path:
    rng = np.random.default_rng(0)
    clips = [rng.normal(0, 0.1, int(SR * s)).astype(np.float32) for s in (1.5, 2.5)]
    metas = [{"key": "with_text", "transcript": "the human transcript", "duration": 1.5, "corpus": "c", "split": "train",
              "words": [{"w": "human", "start": 0.1, "end": 0.4}]},
             {"key": "no_text", "transcript": "", "duration": 2.5, "corpus": "c", "split": "test"}]
    write_shards(((m, encode_audio(a, SR), "flac") for m, a in zip(metas, clips, strict=True)), root)
    return root


def read_set(root: Path) -> dict[str, dict]:
    return {row.key: meta for row, meta, _ in iter_samples(ShardIndex.load(root))}


def tree_hash(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))}


def test_transcribe_writes_transcript_and_word_timings_and_keeps_the_source(whisper, tmp_path):
    src = make_set(tmp_path / "src")
    before = tree_hash(src)
    code = main([str(src), "--out", str(tmp_path / "out"), "--model", str(whisper), "--max-new-tokens", "8",
                 "--device", "cpu"])
    assert code == 0 and tree_hash(src) == before
    out = read_set(tmp_path / "out")
    assert out["with_text"]["transcript_source"] == "the human transcript"
    assert out["with_text"]["words_source"] == [{"w": "human", "start": 0.1, "end": 0.4}]
    assert "transcript_source" not in out["no_text"]
    for meta in out.values():
        validate_sample(meta)
        words = meta["words"]
        assert words, "the random model still emits tokens, so words must appear"
        starts = [w["start"] for w in words]
        assert starts == sorted(starts)
        assert all(0 <= w["start"] <= w["end"] <= meta["duration"] for w in words)
        assert "".join(w["w"] for w in words).replace(" ", "") == meta["transcript"].replace(" ", "")
        prov = meta["provenance"]["transcribe"]
        assert prov["version"].startswith(whisper.name + "@") and prov["params"]["max_new_tokens"] == 8
    report = json.loads((tmp_path / "out" / "stage_transcribe.json").read_text())
    assert report["counts"]["read"] == 2 and report["counts"]["written"] == 2
    assert report["counts"]["words"] == sum(len(m["words"]) for m in out.values())


def test_transcripts_match_a_direct_pipeline_call_and_do_not_depend_on_batching(whisper):
    rng = np.random.default_rng(1)
    clips = [rng.normal(0, 0.1, int(SR * s)).astype(np.float32) for s in (1.0, 2.0, 3.0)]
    asr = WhisperTranscriber(AsrConfig(str(whisper), max_new_tokens=6, device="cpu"))
    together = asr(clips)
    alone = [asr([c])[0] for c in clips]
    assert [t for t, _ in together] == [t for t, _ in alone]
    direct = asr.pipe(clips[0], return_timestamps="word", generate_kwargs={"max_new_tokens": 6, "num_beams": 1})
    assert together[0][0] == direct["text"].strip()


def test_no_words_mode_drops_stale_word_timings(whisper, tmp_path):
    src = make_set(tmp_path / "src")
    transcribe(src, tmp_path / "out", AsrConfig(str(whisper), words=False, max_new_tokens=4, device="cpu"), quiet=True)
    out = read_set(tmp_path / "out")
    assert all("words" not in m for m in out.values())
    assert out["with_text"]["words_source"][0]["w"] == "human"
    assert out["with_text"]["provenance"]["transcribe"]["fields"] == ["transcript"]


def test_model_without_alignment_heads_is_refused_for_word_timings(tmp_path):
    folder = build_whisper(tmp_path / "m", alignment_heads=False)
    with pytest.raises(ValueError, match="alignment_heads.*--no-words"):
        WhisperTranscriber(AsrConfig(str(folder), device="cpu"))
    assert WhisperTranscriber(AsrConfig(str(folder), words=False, device="cpu")) is not None


def test_clean_words_clamps_to_clip_and_keeps_starts_monotonic():
    chunks = [{"text": " hi", "timestamp": (0.5, 0.9)}, {"text": "  ", "timestamp": (0.9, 1.0)},
              {"text": "there", "timestamp": (0.3, 0.2)}, {"text": "end", "timestamp": (1.8, None)},
              {"text": "late", "timestamp": (29.0, 31.0)}]
    assert clean_words(chunks, 2.0) == [
        {"w": "hi", "start": 0.5, "end": 0.9}, {"w": "there", "start": 0.5, "end": 0.5},
        {"w": "end", "start": 1.8, "end": 2.0}, {"w": "late", "start": 2.0, "end": 2.0}]


def test_rerunning_keeps_the_first_transcript_as_source():
    meta = {"transcript": "human", "words": [{"w": "human", "start": 0, "end": 1}]}
    apply_transcript(meta, "asr one", [{"w": "asr", "start": 0, "end": 0.5}])
    apply_transcript(meta, "asr two", None)
    assert meta["transcript"] == "asr two" and meta["transcript_source"] == "human"
    assert meta["words_source"][0]["w"] == "human" and "words" not in meta
