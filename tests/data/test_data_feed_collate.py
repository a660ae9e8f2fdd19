"""Collate: natural-length features, placeholder runs, label masking, prompt modes, generation padding."""

import logging
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from feedkit import make_audio_spec, make_tokenizer, sample_meta

from paralm.audio import num_feature_frames
from paralm.data import prompts
from paralm.data.collate import Collator, FeedItem
from paralm.data.prompts import PromptConfig
from paralm.data.reader import LoadedSample

SECONDS = (0.5, 1.7, 1.1)




@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


@pytest.fixture(scope="module")
def spec(tok):
    return make_audio_spec(tok, stack=3)


def items(seconds=SECONDS, annotator_missing=()):
    out = []
    for i, s in enumerate(seconds):
        meta = sample_meta(f"k{i}", s, "train", n_qa=2)
        if i in annotator_missing:
            meta["labels"]["pred"].pop("ser")
        audio = np.random.default_rng(i).standard_normal(int(s * 16000)).astype(np.float32) * 0.1
        out.append(
            FeedItem(LoadedSample(f"k{i}", audio, 16000, meta, "s-000000.tar"), qa_index=i % 2, source="src")
        )
    return out


def test_features_pad_to_the_batch_maximum_not_to_30_seconds(tok, spec):
    batch = Collator(tok, spec)(items())
    frames = [num_feature_frames(spec.features, int(s * 16000)) for s in SECONDS]
    assert batch.features.shape == (3, 16, max(frames))
    assert batch.features.shape[-1] < 3000 / 10
    assert batch.feature_lengths.tolist() == frames
    assert (batch.features[0, :, frames[0] :] == 0).all()
    torch.testing.assert_close(batch.audio_seconds, torch.tensor(SECONDS))


def test_placeholder_run_matches_the_audio_spec(tok, spec):
    batch = Collator(tok, spec)(items())
    expected = [spec.num_tokens(int(s * 16000)) for s in SECONDS]
    assert batch.audio_token_counts.tolist() == expected
    assert (batch.input_ids == spec.placeholder_token_id).sum(dim=1).tolist() == expected
    for row, n in zip(batch.input_ids.tolist(), expected, strict=True):  # one contiguous run
        first = row.index(spec.placeholder_token_id)
        assert row[first : first + n] == [spec.placeholder_token_id] * n


def test_labels_are_answer_ids_plus_eos_and_ignored_elsewhere(tok, spec):
    its = items()
    batch = Collator(tok, spec)(its)
    for b, it in enumerate(its):
        answer = it.sample.meta["qa"][it.qa_index]["answer"]
        target = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        mask = batch.labels[b] != -100
        assert batch.labels[b][mask].tolist() == target
        assert batch.input_ids[b][mask].tolist() == target  # labels line up with the input they predict
        start = int(batch.prompt_lengths[b])
        assert mask.nonzero().flatten().tolist() == list(range(start, start + len(target)))
        assert (batch.attention_mask[b] == 1).nonzero().flatten().tolist() == list(range(start + len(target)))
    assert batch.num_answer_tokens() == sum(int((batch.labels[b] != -100).sum()) for b in range(3))
    assert batch.references == [it.sample.meta["qa"][it.qa_index]["answer"] for it in its]


def test_explicit_block_is_in_the_prompt_only_in_explicit_mode(tok, spec):
    plain = Collator(tok, spec, PromptConfig())(items())
    explicit = Collator(tok, spec, PromptConfig("explicit", "pred:ser"))(items())
    plain_text = tok.decode(plain.input_ids[0], skip_special_tokens=False)
    explicit_text = tok.decode(explicit.input_ids[0], skip_special_tokens=False)
    assert "Paralinguistic cues" not in plain_text
    assert "Paralinguistic cues: emotion: sad; arousal: 0.30 (low)" in explicit_text
    assert explicit_text.index("Paralinguistic cues") < explicit_text.index("Instruction:")


def test_missing_annotator_is_counted_and_flagged(tok, spec):
    batch, missing = Collator(tok, spec, PromptConfig("explicit", "pred:ser")).collate(
        items(annotator_missing={1})
    )
    assert missing == 1
    assert [m["metadata_missing"] for m in batch.meta] == [False, True, False]
    assert "emotion: unknown" in tok.decode(batch.input_ids[1])


def test_oracle_is_flagged_in_batch_meta_and_logged(tok, spec, monkeypatch, caplog):
    monkeypatch.setattr(prompts, "_oracle_warned", False)
    with caplog.at_level(logging.WARNING, logger="paralm.data.prompts"):
        batch = Collator(tok, spec, PromptConfig("explicit", "gold"))(items())
    assert all(m["prompt"] == {"mode": "explicit", "metadata": "gold", "oracle": True} for m in batch.meta)
    assert any("ORACLE" in r.getMessage() for r in caplog.records)
    plain = Collator(tok, spec, PromptConfig())(items())
    assert not any(m["prompt"]["oracle"] for m in plain.meta)


def test_generation_mode_left_pads_and_keeps_answers_out_of_the_input(tok, spec):
    its = items()
    gen = Collator(tok, spec, for_generation=True)(its)
    train = Collator(tok, spec)(its)
    assert (gen.labels == -100).all()
    lengths = gen.prompt_lengths.tolist()
    width = gen.input_ids.shape[1]
    assert width == max(lengths)
    for b, n in enumerate(lengths):
        assert gen.attention_mask[b].tolist() == [0] * (width - n) + [1] * n
        assert (gen.input_ids[b, : width - n] == tok.pad_token_id).all()
        assert gen.input_ids[b, width - n :].tolist() == train.input_ids[b, :n].tolist()
    assert "sounds calm" not in tok.decode(gen.input_ids[0]) and gen.references == train.references


def test_tokenizer_without_chat_template_uses_the_plain_template(spec):
    plain_tok = make_tokenizer(chat_template=False)
    batch = Collator(plain_tok, spec)(items())
    text = plain_tok.decode(batch.input_ids[0])
    assert text.startswith("User: Instruction:") and "\nAssistant: " in text


def test_placeholder_unknown_to_the_tokenizer_is_refused(tok, spec):
    with pytest.raises(
        ValueError, match=re.escape("placeholder '<|audio|>' to 3, but the audio spec says 9")
    ):
        Collator(tok, replace(spec, placeholder_token_id=9))


def test_batched_tokenisation_gives_each_item_the_ids_it_gets_alone(tok, spec):
    its = items(seconds=(0.5, 1.7, 1.1, 0.9))
    batch = Collator(tok, spec, PromptConfig("explicit", "pred:ser"))(its)
    for b, it in enumerate(its):
        alone = Collator(tok, spec, PromptConfig("explicit", "pred:ser"))([it])
        n = int(alone.attention_mask[0].sum())
        assert batch.input_ids[b, :n].tolist() == alone.input_ids[0, :n].tolist()
        assert batch.labels[b, :n].tolist() == alone.labels[0, :n].tolist()
        assert int(batch.attention_mask[b].sum()) == n


def test_filler_items_travel_as_a_bool_tensor_beside_their_meta_flag(tok, spec):
    its = items()
    its[2] = replace(its[2], is_pad=True)  # the copy that evens out the last batch across ranks
    batch = Collator(tok, spec)(its)
    assert batch.is_pad.dtype == torch.bool and batch.is_pad.tolist() == [False, False, True]
    assert [m["is_pad"] for m in batch.meta] == [False, False, True]
    moved = batch.to("meta")  # Batch.to moves it with the other tensors
    assert moved.is_pad.device.type == "meta" and moved.is_pad.dtype == torch.bool


def test_a_batch_built_without_pad_flags_holds_only_real_items(tok, spec):
    batch = Collator(tok, spec)(items())
    bare = type(batch)(batch.input_ids, batch.attention_mask, batch.labels, batch.features,
                       batch.feature_lengths, batch.audio_token_counts)
    assert bare.is_pad.tolist() == [False, False, False]
