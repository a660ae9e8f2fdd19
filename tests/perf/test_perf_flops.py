"""FLOP counting from model sizes agrees with torch's FlopCounterMode; chunked CE equals the plain loss."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count
from trainkit import tiny_datamodule, tiny_shards

from paralm.lit_module import SpeechLMModule, token_losses
from paralm.model.builders import tiny_speech_lm_config
from paralm.perf.flops import HEAD, FlopModel, lm_step_flops
from paralm.perf.peak import lookup_peak, peak_flops

aten = torch.ops.aten
# FlopCounterMode knows the CUDA attention kernels but not the CPU one; map it to torch's own SDPA formulas.
CPU_SDPA = {
    aten._scaled_dot_product_flash_attention_for_cpu:
        lambda q, k, v, *args, out_shape=None, **kwargs: sdpa_flop_count(q, k, v),
    aten._scaled_dot_product_flash_attention_for_cpu_backward:
        lambda g, q, k, v, *args, out_shape=None, **kwargs: sdpa_backward_flop_count(g, q, k, v),
}




@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return tiny_shards(tmp_path_factory.mktemp("flops"), n=12)


def _module_and_batch(shards, llm: str = "lora", encoder: str = "frozen", batch_size: int = 4, kind: str = "whisper"):
    torch.manual_seed(0)
    module = SpeechLMModule(tiny_speech_lm_config(encoder=kind, llm_trainable=llm, encoder_trainable=encoder))
    module.configure_model()
    module.net.train()
    batch = next(iter(tiny_datamodule(shards, module, batch_size=batch_size).train_dataloader()))
    return module, batch


def _counted_step(module, batch) -> int:
    with FlopCounterMode(display=False, custom_mapping=CPU_SDPA) as counter:
        sums, counts = token_losses(module(batch), batch.labels)
        (sums.sum() / counts.sum()).backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("llm,encoder,kind", [("lora", "frozen", "whisper"), ("lora", "lora", "whisper"),
                                               ("full", "full", "whisper"), ("frozen", "frozen", "whisper"),
                                               ("lora", "frozen", "hf_audio")])
def test_step_flops_agree_with_flop_counter_mode_on_debug_model(shards, llm, encoder, kind):
    module, batch = _module_and_batch(shards, llm, encoder, kind=kind)
    counted = _counted_step(module, batch)
    ours = FlopModel(module.net).step(batch, padded=True)
    assert abs(ours.total - counted) / counted < 0.05
    assert ours.attention > 0 and ours.trained > 0  # the projector always trains
    assert (ours.frozen > 0) == (llm != "full" or encoder != "full")


def test_frozen_encoder_costs_forward_only_and_trained_llm_costs_more(shards):
    frozen_module, batch = _module_and_batch(shards, "lora", "frozen")
    full_module, _ = _module_and_batch(shards, "full", "full")
    frozen, full = FlopModel(frozen_module.net).step(batch), FlopModel(full_module.net).step(batch)
    forward_only = FlopModel(frozen_module.net).step(batch, backward=False)
    assert frozen.by_component["encoder"] == forward_only.by_component["encoder"]  # no backward through it
    assert full.by_component["encoder"] > 2.5 * frozen.by_component["encoder"]
    assert full.by_component["llm"] > frozen.by_component["llm"]


def _head_flops(model: FlopModel, positions: int) -> float:
    """Forward + backward FLOPs of the LM head over `positions` positions."""
    return sum(op.flops_per_position * positions * (1 + op.backward_factor())
               for op in model.ops["llm"] if getattr(op, "where", None) == HEAD)


def test_useful_flops_equal_padded_flops_for_a_single_clip_but_for_the_head_off_the_answers(shards):
    module, batch = _module_and_batch(shards, batch_size=1)
    model = FlopModel(module.net)
    useful, padded = model.step(batch, padded=False).total, model.step(batch, padded=True).total
    off_answers = int(batch.attention_mask.sum()) - batch.num_answer_tokens()
    assert off_answers > 0 and _head_flops(model, 1) > 0
    assert padded - useful == pytest.approx(_head_flops(model, off_answers))
    module4, batch4 = _module_and_batch(shards, batch_size=4)
    assert FlopModel(module4.net).step(batch4).total < FlopModel(module4.net).step(batch4, padded=True).total


@pytest.mark.parametrize("llm", ["lora", "full"])
def test_useful_flops_agree_with_flop_counter_mode_on_the_packed_loss(shards, llm):
    """The packed loss runs the LM head on answer positions only: what the useful view prices."""
    module, batch = _module_and_batch(shards, llm, batch_size=1)  # one row: packing moves nothing
    with FlopCounterMode(display=False, custom_mapping=CPU_SDPA) as counter:
        sums, counts = module.net.packed_token_losses(batch.input_ids, batch.attention_mask, batch.labels,
                                                      batch.features, batch.feature_lengths)
        (sums.sum() / counts.sum()).backward()
    useful = FlopModel(module.net).step(batch, padded=False)
    assert useful.total == pytest.approx(counter.get_total_flops(), rel=1e-6)  # the head off the answers is ~3 %


def test_cached_encoder_states_cost_no_encoder_flops(shards):
    module, batch = _module_and_batch(shards)
    with torch.no_grad():
        frames, lengths = module.net.encoder(batch.features, batch.feature_lengths)
    batch.encoder_states, batch.encoder_lengths = frames, lengths
    cached = FlopModel(module.net).step(batch, padded=True)
    assert cached.by_component["encoder"] == 0
    with FlopCounterMode(display=False, custom_mapping=CPU_SDPA) as counter:
        sums, counts = token_losses(module(batch), batch.labels)
        (sums.sum() / counts.sum()).backward()
    assert abs(cached.total - counter.get_total_flops()) / counter.get_total_flops() < 0.05


def test_bare_lm_flops_match_flop_counter_mode(shards):
    module, batch = _module_and_batch(shards)
    llm = module.net.llm
    with FlopCounterMode(display=False, custom_mapping=CPU_SDPA) as counter:
        out = llm(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels)
        out.loss.backward()
    ours = lm_step_flops(llm, batch.attention_mask, padded=True)
    assert abs(ours.total - counter.get_total_flops()) / counter.get_total_flops() < 0.05


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_chunked_loss_equals_plain_loss_and_gradients(dtype):
    torch.manual_seed(0)
    logits = torch.randn(3, 37, 50, dtype=dtype, requires_grad=True)
    labels = torch.full((3, 37), -100)
    labels[0, 20:30] = torch.randint(0, 50, (10,))
    labels[0, 25] = -100
    labels[1, 5:7] = 3
    labels[2, 36] = 4
    results = []
    for chunk in (0, 1, 8, 1000):
        logits.grad = None
        sums, counts = token_losses(logits, labels, chunk)
        (sums.sum() / counts.sum()).backward()
        results.append((sums.detach().clone(), logits.grad.float().clone()))
    for sums, grad in results[1:]:
        torch.testing.assert_close(sums, results[0][0], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(grad, results[0][1], atol=1e-7, rtol=1e-4)


def test_peak_flops_from_device_table_override_or_error():
    assert lookup_peak("NVIDIA H100 80GB HBM3") == 989e12
    assert lookup_peak("NVIDIA H100 PCIe") == 756e12
    assert lookup_peak("Some Future Card") is None
    assert peak_flops("cpu", override=1e9) == (1e9, "configured")
    with pytest.raises(ValueError, match="peak_flops must be > 0"):
        peak_flops("cpu", override=0)
