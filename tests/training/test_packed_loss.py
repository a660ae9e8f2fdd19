"""The packed loss (paralm/model/packing.py): pad-free rows, LM head on answer positions only, same values and
gradients as the padded path; a model it does not fit falls back with a warning instead of training wrong."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from trainkit import tiny_datamodule, tiny_module, tiny_shards

from paralm.lit_module import RuntimeConfig, SpeechLMModule, token_losses
from paralm.model.packing import answer_targets, first_fit_rows, pack_plan


def test_first_fit_puts_the_longest_first_and_fills_rows_without_overflow():
    rows = first_fit_rows([5, 2, 8, 3, 1, 6], capacity=8)
    assert rows == [[2], [5, 1], [0, 3], [4]]
    assert sorted(i for row in rows for i in row) == list(range(6))


def test_plan_moves_every_real_token_once_with_positions_restarting_per_sample():
    mask = torch.tensor([[0, 0, 1, 1, 1],   # left padded, 3 tokens
                         [1, 1, 0, 0, 0],   # right padded, 2 tokens
                         [1, 1, 1, 1, 1],   # full
                         [0, 1, 1, 0, 0]])  # 2 tokens in the middle
    plan = pack_plan(mask)
    assert plan.rows == 3  # 5 | 3 + 2 | 2 (+ a filler run)
    real = torch.nonzero(mask.reshape(-1), as_tuple=True)[0]
    moved = plan.source[plan.source < mask.numel()]
    assert sorted(moved.tolist()) == real.tolist()  # each real token once, no padding
    assert torch.equal(plan.source.reshape(-1)[plan.dest[real]], real)  # dest is the inverse of source
    assert (plan.dest.reshape(mask.shape)[mask == 0] == -1).all()
    for r in range(plan.rows):  # a sample's tokens stay in order with positions 0..n-1
        for start in torch.nonzero(plan.position[r] == 0, as_tuple=True)[0].tolist():
            run = plan.source[r, start:]
            n = 1
            while start + n < mask.shape[1] and plan.position[r, start + n] == n:
                n += 1
            assert torch.all(run[1:n] - run[:n - 1] == 1) or int(run[0]) == mask.numel()


def test_answer_targets_are_the_positions_before_each_label():
    labels = torch.tensor([[-100, -100, 7, 8, -100], [-100, 5, -100, -100, -100]])
    t = answer_targets(labels)
    assert t.flat.tolist() == [1, 2, 5] and t.sample.tolist() == [0, 0, 1] and t.target.tolist() == [7, 8, 5]


@pytest.fixture(scope="module")
def batch_and_module(tmp_path_factory):
    torch.manual_seed(0)
    shards = tiny_shards(tmp_path_factory.mktemp("packed"), durations=(0.3, 1.8))
    module = tiny_module(llm_trainable="full")
    dm = tiny_datamodule(shards, module, batch_size=6)
    dm.setup("fit")
    module.configure_model()
    original = next(iter(dm.train_dataloader()))
    return widened(original, extra=int(original.input_ids.shape[1] * 1.2)), module, original


def widened(batch, extra: int):
    """The batch right-padded by `extra` more positions, as if one longer sample had joined it: about half
    of it is padding, so two samples fit in one packed row."""
    pad = batch.attention_mask.new_zeros(batch.attention_mask.shape[0], extra)
    return dataclasses.replace(
        batch, input_ids=torch.cat([batch.input_ids, pad], 1), attention_mask=torch.cat([batch.attention_mask, pad], 1),
        labels=torch.cat([batch.labels, pad - 100], 1))


def _grads(module, loss):
    module.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def test_packed_loss_and_gradients_equal_the_padded_ones_with_fewer_rows(batch_and_module):
    batch, module, _ = batch_and_module
    module.train()
    ref_sums, ref_counts = token_losses(module(batch), batch.labels)
    ref = _grads(module, ref_sums.sum() / ref_counts.sum())
    sums, counts = module.net.packed_token_losses(
        batch.input_ids, batch.attention_mask, batch.labels, batch.features, batch.feature_lengths)
    got = _grads(module, sums.sum() / counts.sum())
    assert torch.equal(counts, ref_counts)
    torch.testing.assert_close(sums, ref_sums, rtol=1e-5, atol=1e-5)
    assert set(got) == set(ref) and len(ref) > 10
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-4, atol=1e-6, msg=name)
    assert pack_plan(batch.attention_mask).rows <= batch.input_ids.shape[0] // 2


def test_training_step_uses_the_packed_loss_after_checking_it_once(batch_and_module, monkeypatch):
    batch, module, _ = batch_and_module
    fresh = tiny_module(llm_trainable="full")
    fresh.configure_model()
    fresh.net.load_state_dict(module.net.state_dict())
    calls = []
    original = fresh.net.packed_token_losses
    monkeypatch.setattr(fresh.net, "packed_token_losses", lambda *a, **k: calls.append(1) or original(*a, **k))
    first = fresh.token_losses(batch)
    second = fresh.token_losses(batch)
    assert len(calls) == 3 and fresh.runtime.packed_loss and fresh._packed_checked  # two steps + the check
    torch.testing.assert_close(first[0], second[0])


def test_a_packed_loss_that_disagrees_warns_and_the_run_keeps_the_padded_loss(batch_and_module, monkeypatch):
    batch, module, _ = batch_and_module
    fresh = tiny_module(llm_trainable="full")
    fresh.configure_model()
    fresh.net.load_state_dict(module.net.state_dict())
    wrong = lambda *a, **k: (torch.ones(batch.input_ids.shape[0]), (batch.labels[:, 1:] != -100).sum(1))  # noqa: E731
    monkeypatch.setattr(fresh.net, "packed_token_losses", wrong)
    with pytest.warns(UserWarning, match="packed loss disagrees"):
        sums, counts = fresh.token_losses(batch)
    ref_sums, ref_counts = token_losses(fresh(batch), batch.labels)
    assert fresh._packed_refused and not fresh._packed_allowed() and fresh.runtime.packed_loss  # config kept
    torch.testing.assert_close(sums, ref_sums)
    assert sums.requires_grad  # the fallback is the real, differentiable loss


def test_compile_and_the_switch_keep_the_padded_path():
    config = tiny_module().model_config
    assert not SpeechLMModule(config, runtime=RuntimeConfig(compile=True))._packed_allowed()
    assert not SpeechLMModule(config, runtime=RuntimeConfig(packed_loss=False))._packed_allowed()
    assert SpeechLMModule(config)._packed_allowed()


def test_sharded_strategies_keep_the_padded_path():
    """FSDP gathers the LLM's weights in the LLM's own forward, which the packed loss goes around."""
    from types import SimpleNamespace

    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy

    module = tiny_module()
    module._trainer = SimpleNamespace(strategy=FSDPStrategy())
    assert not module._packed_allowed()
    module._trainer = SimpleNamespace(strategy=DDPStrategy())
    assert module._packed_allowed()


def test_a_batch_that_packs_no_two_samples_together_does_not_count_as_the_check(batch_and_module):
    """Causal attention never sees a row's filler, so only a row holding two samples can reveal a model that
    ignores restarting position ids; the check waits for such a batch."""
    from paralm.model.packing import shares_rows

    batch, _, narrow = batch_and_module
    assert not shares_rows(narrow.attention_mask) and shares_rows(batch.attention_mask)
    fresh = tiny_module(llm_trainable="full")
    fresh.configure_model()
    fresh.token_losses(narrow)
    assert not fresh._packed_checked
    fresh.token_losses(batch)
    assert fresh._packed_checked


def test_the_check_passes_under_lora_dropout_and_leaves_the_random_stream_alone(batch_and_module):
    """The training step's dropout masks differ between the packed and the padded layout; the check compares
    both without dropout, so a model with LoRA dropout keeps the packed loss, and it draws no random number."""
    batch, _, _ = batch_and_module
    config = tiny_module(llm_trainable="lora").model_config
    config.llm.lora = dataclasses.replace(config.llm.lora, dropout=0.5)
    module = SpeechLMModule(config)
    module.configure_model()
    dropouts = [m for n, m in module.net.named_modules() if isinstance(m, torch.nn.Dropout) and "lora_dropout" in n]
    assert dropouts and all(m.p == 0.5 for m in dropouts)
    module.net.train(True)
    assert all(m.training for m in dropouts)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    module._packed_mismatch(batch)
    assert torch.equal(torch.rand(3), expected_next)
    module.token_losses(batch)
    assert module._packed_checked and not module._packed_refused
    assert all(m.training for m in dropouts)  # train mode restored after the check
