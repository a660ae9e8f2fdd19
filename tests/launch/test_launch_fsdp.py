"""FSDP wraps the PEFT Speech-LLM so that frozen (bf16 on GPU) and trained (fp32) weights never share a unit.

Multi-process FSDP is checked on GPU elsewhere; here the debug model is cast the way the GPU precision
policy casts it (frozen weights to bf16), the wrap policy's units are inspected, and torch's FSDP wraps
the model for real in a one-process gloo group on CPU: it must accept every unit (FSDP refuses to
flatten mixed dtypes) and produce exactly the units the policy promises.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import yaml
from sweepkit import DEBUG_CONFIG

from paralm.launch import trainer_args_from_env
from paralm.lit_module import SpeechLMModule
from paralm.model.config import SpeechLMConfig
from paralm.peft_fsdp import PeftFSDPStrategy, PeftWrapPolicy, unit_parameters, wrap_plan
from paralm.runs.sweep.check import parse_with_cli

LAYERS = {"LlamaDecoderLayer", "WhisperEncoderLayer"}


def build_net():
    cfg = SpeechLMConfig.from_dict(yaml.safe_load(DEBUG_CONFIG.read_text())["model"]["model"])
    module = SpeechLMModule(cfg)
    module.configure_model()
    module.net.cast_frozen(torch.bfloat16)  # what configure_model does on GPU
    return module.net


@pytest.fixture(scope="module")
def net():
    return build_net()


def layers_only(module, recurse, nonwrapped_numel):
    return recurse or type(module).__name__ in LAYERS


def test_policy_wraps_every_transformer_layer_and_every_trained_leaf(net):
    units = set(wrap_plan(net, PeftWrapPolicy()))
    layers = {n for n, m in net.named_modules() if type(m).__name__ in LAYERS}
    lora = {n for n, _ in net.named_modules() if n.endswith(("lora_A.default", "lora_B.default"))}
    projector = {n for n, m in net.projector.named_modules(prefix="projector") if isinstance(m, torch.nn.Linear)}
    assert len(layers) == 4 and lora and projector
    assert units == layers | lora | projector
    assert not any(n.endswith(("embed_tokens", "lm_head")) for n in units)


def test_every_unit_flattens_one_dtype_and_one_trainability(net):
    groups = unit_parameters(net, wrap_plan(net, PeftWrapPolicy()))
    for unit, params in groups.items():
        assert len({p.dtype for p in params}) == 1, f"unit {unit or '<root>'} mixes dtypes"
        assert len({p.requires_grad for p in params}) == 1, f"unit {unit or '<root>'} mixes frozen and trained"
    assert all(not p.requires_grad for p in groups[""])  # the root keeps embeddings, norms, head: all frozen


def test_wrapping_layers_alone_would_mix_frozen_bf16_with_trained_fp32(net):
    groups = unit_parameters(net, wrap_plan(net, layers_only))
    assert any(len({p.dtype for p in params}) > 1 for params in groups.values())


@pytest.mark.filterwarnings("ignore:FSDP is switching to use `NO_SHARD`")
def test_torch_fsdp_accepts_the_policy_and_builds_the_promised_units(tmp_path):
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    cpu = torch.device("cpu")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        fresh = build_net()
        promised = set(wrap_plan(fresh, PeftWrapPolicy()))
        wrapped = FSDP(fresh, auto_wrap_policy=PeftWrapPolicy(), use_orig_params=True, device_id=cpu)
        units = {n.replace("_fsdp_wrapped_module.", "") for n, m in wrapped.named_modules() if isinstance(m, FSDP) and n}
        assert units == promised
        with pytest.raises(ValueError, match="uniform dtype"):
            FSDP(build_net(), auto_wrap_policy=layers_only, use_orig_params=True, device_id=cpu)
    finally:
        dist.destroy_process_group()


def test_peft_fsdp_strategy_builds_with_the_policy_and_orig_params():
    strategy = PeftFSDPStrategy(sharding_strategy="FULL_SHARD")
    assert isinstance(strategy.kwargs["auto_wrap_policy"], PeftWrapPolicy)
    assert strategy.kwargs["use_orig_params"] is True
    with pytest.raises(ValueError, match="use_orig_params=True"):
        PeftFSDPStrategy(use_orig_params=False)


@pytest.mark.parametrize("path", ["paralm.peft_fsdp.PeftFSDPStrategy", "paralm.launch.PeftFSDPStrategy"],
                         ids=["documented", "before-the-move"])
def test_cli_accepts_the_fsdp_strategy_and_launcher_fsdp_maps_to_it(path):
    argv = ["fit", "--config", str(DEBUG_CONFIG), f"--trainer.strategy={path}",
            "--trainer.strategy.sharding_strategy=SHARD_GRAD_OP", "--trainer.strategy.timeout=0:01:00"]
    assert parse_with_cli(argv, DEBUG_CONFIG.parent) is None
    assert "--trainer.strategy=paralm.peft_fsdp.PeftFSDPStrategy" in trainer_args_from_env(
        ["fit"], {"LT_STRATEGY": "fsdp"})
