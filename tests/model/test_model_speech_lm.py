"""SpeechLM: splicing, padding sides, generate, trainability, state dicts, precision helpers."""

from __future__ import annotations

import pytest
import torch
from modelkit import clip_features, next_token_loss, prompt_batch

from paralm.model import SpeechLM, tiny_speech_lm_config

QUESTIONS = ["How does the speaker feel?", "Why?", "What is said here, exactly?"]


def _model(seed: int = 0, **kw) -> SpeechLM:
    torch.manual_seed(seed)
    return SpeechLM.from_config(tiny_speech_lm_config(**kw))


def _randomise_lora(model: SpeechLM) -> None:
    """LoRA B starts at zero (adapter = no-op); give it values so adapters actually matter."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)


@pytest.fixture(scope="module")
def model():
    m = _model()
    _randomise_lora(m)
    return m.eval()


@pytest.mark.parametrize("side", ["left", "right"])
def test_each_sample_gets_the_same_logits_alone_and_in_a_padded_batch(model, side):
    feats, lengths = clip_features(model.audio_token_spec(), [0.4, 1.5, 0.9])
    batch = prompt_batch(model, QUESTIONS, lengths, padding_side=side)
    with torch.no_grad():
        logits = model(batch["input_ids"], batch["attention_mask"], feats, lengths)
        for i in range(3):
            one = prompt_batch(model, QUESTIONS[i:i + 1], lengths[i:i + 1])
            alone = model(one["input_ids"], one["attention_mask"], feats[i:i + 1, :, : lengths[i]], lengths[i:i + 1])
            valid = batch["attention_mask"][i].bool()
            assert (logits[i, valid] - alone[0]).abs().max() < 1e-4


def test_placeholder_positions_carry_the_projected_audio(model):
    feats, lengths = clip_features(model.audio_token_spec(), [0.4, 1.5], seed=1)
    batch = prompt_batch(model, QUESTIONS[:2], lengths, padding_side="left")
    with torch.no_grad():
        embeds, positions = model.embed(batch["input_ids"], batch["attention_mask"], feats, lengths)
        tokens, counts = model.encode_audio(feats, lengths)
    for i in range(2):
        at = batch["input_ids"][i] == model.placeholder_id
        assert int(at.sum()) == int(counts[i])
        assert torch.equal(embeds[i, at], tokens[i, : counts[i]])
        first_real = int((batch["attention_mask"][i] == 0).sum())
        assert positions[i, first_real] == 0 and positions[i, -1] == batch["attention_mask"][i].sum() - 1


def test_different_audio_changes_the_answer_logits(model):
    feats, lengths = clip_features(model.audio_token_spec(), [1.0, 1.0], seed=2)
    feats[1] = -1.0  # log-mel of near silence vs noise
    batch = prompt_batch(model, QUESTIONS[:1] * 2, lengths)
    with torch.no_grad():
        logits = model(batch["input_ids"], batch["attention_mask"], feats, lengths)
        same = model(batch["input_ids"], batch["attention_mask"], feats[[0, 0]], lengths)
    assert (logits[0, -1] - logits[1, -1]).abs().max() > 1e-3
    assert (same[0, -1] - same[1, -1]).abs().max() < 1e-6


def test_placeholder_run_of_the_wrong_length_is_an_error(model):
    feats, lengths = clip_features(model.audio_token_spec(), [1.0], seed=3)
    batch = prompt_batch(model, QUESTIONS[:1], lengths)
    ids = batch["input_ids"].clone()
    ids[0, (ids[0] == model.placeholder_id).nonzero()[0]] = 5  # one placeholder fewer
    with pytest.raises(ValueError, match="runs .* vs audio tokens"):
        model(ids, batch["attention_mask"], feats, lengths)


def test_cached_encoder_states_give_the_same_logits(model):
    feats, lengths = clip_features(model.audio_token_spec(), [0.4, 1.5], seed=4)
    batch = prompt_batch(model, QUESTIONS[:2], lengths)
    with torch.no_grad():
        states, state_lengths = model.encoder(feats, lengths)
        direct = model(batch["input_ids"], batch["attention_mask"], feats, lengths)
        cached = model(batch["input_ids"], batch["attention_mask"], torch.empty(2, 0, 0), lengths,
                       encoder_states=states, encoder_lengths=state_lengths)
    assert torch.equal(direct, cached)


def test_cached_encoder_states_are_refused_when_the_encoder_trains():
    model = _model(encoder_trainable="lora")
    feats, lengths = clip_features(model.audio_token_spec(), [0.4], seed=4)
    states, state_lengths = model.encoder(feats, lengths)
    with pytest.raises(ValueError, match="encoder trains"):
        model.encode_audio(feats, lengths, encoder_states=states, encoder_lengths=state_lengths)


def test_generate_returns_one_string_per_prompt_and_ignores_padding_side(model):
    feats, lengths = clip_features(model.audio_token_spec(), [0.4, 1.5, 0.9], seed=5)
    right = prompt_batch(model, QUESTIONS, lengths, padding_side="right")
    left = prompt_batch(model, QUESTIONS, lengths, padding_side="left")
    out_right = model.generate(right["input_ids"], right["attention_mask"], feats, lengths, max_new_tokens=6)
    out_left = model.generate(left["input_ids"], left["attention_mask"], feats, lengths, max_new_tokens=6)
    one = prompt_batch(model, QUESTIONS[1:2], lengths[1:2])
    alone = model.generate(one["input_ids"], one["attention_mask"], feats[1:2, :, : lengths[1]], lengths[1:2],
                           max_new_tokens=6)
    assert isinstance(out_right, list) and len(out_right) == 3 and all(isinstance(s, str) for s in out_right)
    assert out_right == out_left and out_left[1] == alone[0]
    assert all(len(s) <= 6 for s in out_left)
    sampled = model.generate(left["input_ids"], left["attention_mask"], feats, lengths, max_new_tokens=4,
                             do_sample=True, temperature=0.8, top_p=0.9)
    assert len(sampled) == 3


def _one_step(model: SpeechLM) -> dict[str, torch.Tensor]:
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    feats, lengths = clip_features(model.audio_token_spec(), [0.5, 1.2], seed=6)
    batch = prompt_batch(model, QUESTIONS[:2], lengths, answers=["calm", "sad"])
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    next_token_loss(model(batch["input_ids"], batch["attention_mask"], feats, lengths), batch["labels"]).backward()
    opt.step()
    return before


@pytest.mark.parametrize("encoder_trainable,llm_trainable", [("frozen", "lora"), ("lora", "lora"), ("full", "full")])
def test_one_step_changes_only_trainable_parameters(encoder_trainable, llm_trainable):
    model = _model(encoder_trainable=encoder_trainable, llm_trainable=llm_trainable)
    before = _one_step(model)
    for name, p in model.named_parameters():
        changed = not torch.equal(before[name], p.detach())
        if not p.requires_grad:
            assert p.grad is None and not changed, name
        elif p.grad.abs().max() > 0:
            assert changed, name
    expect_trained = {"encoder": encoder_trainable != "frozen", "projector": True, "llm": True}
    for component, expected in expect_trained.items():
        trained = [n for n, p in model.named_parameters() if p.requires_grad and n.startswith(component + ".")]
        assert bool(trained) == expected, component
        assert not trained or any(not torch.equal(before[n], model.get_parameter(n)) for n in trained), component
    if encoder_trainable == "lora":
        assert all("lora_" in n for n in model.trainable_state_dict() if n.startswith("encoder."))
    if encoder_trainable == "full":
        assert not model.encoder.model.embed_positions.weight.requires_grad  # sinusoidal table stays fixed


def test_frozen_components_stay_in_eval_mode_when_training():
    model = _model().train()
    assert model.training and model.projector.training and model.llm.training
    assert not model.encoder.training and not any(m.training for m in model.encoder.modules())


def test_trainable_state_dict_names_are_stable_and_reload_exactly():
    a, b = _model(seed=0), _model(seed=1)
    _one_step(a)
    state = a.trainable_state_dict()
    assert list(state) == list(b.trainable_state_dict())
    assert all(t.requires_grad is False for t in state.values())
    b.load_trainable_state_dict(state)
    for name, value in state.items():
        assert torch.equal(b.get_parameter(name), value)
    with pytest.raises(KeyError, match="missing"):
        b.load_trainable_state_dict({k: v for k, v in list(state.items())[1:]})


def test_trainable_report_counts_each_component():
    report = _model().trainable_report()
    lines = report.splitlines()
    assert [line.split()[0] for line in lines] == ["encoder", "projector", "llm", "total"]
    assert lines[0].split()[1] == "0" and "100.00%" in lines[1]


def test_gradient_checkpointing_keeps_gradients():
    grads = []
    for checkpointing in (False, True):
        model = _model(encoder_trainable="lora")
        _randomise_lora(model)
        if checkpointing:
            model.enable_gradient_checkpointing()
            for part in (model.llm, model.encoder):
                assert any(getattr(m, "gradient_checkpointing", False) for m in part.modules())
        feats, lengths = clip_features(model.audio_token_spec(), [0.5, 1.2], seed=7)
        batch = prompt_batch(model, QUESTIONS[:2], lengths, answers=["a", "b"])
        model.train()
        next_token_loss(model(batch["input_ids"], batch["attention_mask"], feats, lengths), batch["labels"]).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys()
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-6) for n in grads[0])


def test_cast_frozen_keeps_trained_parts_fp32_and_trains_under_autocast():
    model = _model()
    model.cast_frozen(torch.bfloat16)
    for name, p in model.named_parameters():
        assert p.dtype == (torch.float32 if p.requires_grad else torch.bfloat16), name
    feats, lengths = clip_features(model.audio_token_spec(), [0.5], seed=8)
    batch = prompt_batch(model, QUESTIONS[:1], lengths, answers=["ok"])
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(batch["input_ids"], batch["attention_mask"], feats, lengths)
    loss = next_token_loss(logits, batch["labels"])
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad.dtype == torch.float32 for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("encoder", ["whisper", "hf_audio"])
def test_cast_frozen_model_also_runs_and_generates_without_autocast(encoder):
    model = _model(encoder=encoder, encoder_trainable="lora")
    model.cast_frozen(torch.bfloat16)
    feats, lengths = clip_features(model.audio_token_spec(), [0.5, 0.8], seed=9)
    batch = prompt_batch(model, QUESTIONS[:2], lengths)
    with torch.no_grad():
        logits = model(batch["input_ids"], batch["attention_mask"], feats, lengths)
    assert torch.isfinite(logits).all()
    assert len(model.generate(batch["input_ids"], batch["attention_mask"], feats, lengths, max_new_tokens=3)) == 2
