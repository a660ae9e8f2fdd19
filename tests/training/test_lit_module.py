"""The LightningModule around SpeechLM: checkpoints hold only trained weights, round-trip exactly, export."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from trainkit import tiny_datamodule, tiny_module, tiny_shards

from paralm.export import export_checkpoint, load_trained
from paralm.fault.checkpoint_io import AtomicCheckpointIO, load_verified
from paralm.model.speech_lm import SpeechLM


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("lit")
    shards = tiny_shards(tmp)
    module = tiny_module()
    dm = tiny_datamodule(shards, module)
    ckpt_cb = ModelCheckpoint(dirpath=tmp / "ckpt", every_n_train_steps=3, save_top_k=-1)
    trainer = pl.Trainer(accelerator="cpu", max_steps=3, logger=False, enable_progress_bar=False,
                         limit_val_batches=0, callbacks=[ckpt_cb], plugins=[AtomicCheckpointIO()],
                         default_root_dir=tmp, enable_model_summary=False)
    trainer.fit(module, datamodule=dm)
    ckpt = next((tmp / "ckpt").glob("*.ckpt"))
    batch = next(iter(dm.val_dataloader()))
    return {"module": module, "ckpt": ckpt, "batch": batch, "tmp": tmp}


def test_checkpoint_holds_only_trained_parameters_and_loads_weights_only(trained):
    state = torch.load(trained["ckpt"], weights_only=True)["state_dict"]
    net = trained["module"].net
    expected = {f"net.{k}" for k, p in net.named_parameters() if p.requires_grad}
    assert set(state) == expected
    assert len(expected) < len(list(net.parameters()))  # frozen encoder / LLM base not stored


def test_checkpoint_round_trip_reproduces_logits_exactly(trained):
    module, batch = trained["module"], trained["batch"]
    module.eval()
    with torch.no_grad():
        before = module(batch)
    fresh = tiny_module()
    fresh.on_load_checkpoint(load_verified(trained["ckpt"]))
    fresh.eval()
    with torch.no_grad():
        after = fresh(batch)
    assert torch.equal(before, after)


def test_export_reload_reproduces_logits_and_adapter_loads_with_peft(trained):
    from peft import PeftModel

    from paralm.model.llm import build_tokenizer, load_llm

    module, batch = trained["module"], trained["batch"]
    out = export_checkpoint(trained["ckpt"], trained["tmp"] / "export")
    reloaded = SpeechLM.from_export(out).eval()
    from_ckpt = load_trained(trained["ckpt"]).eval()
    args = (batch.input_ids, batch.attention_mask, batch.features, batch.feature_lengths)
    with torch.no_grad():
        assert torch.equal(reloaded(*args), from_ckpt(*args))
    cfg = module.model_config
    base = load_llm(cfg.llm, build_tokenizer(cfg.llm, cfg.placeholder_token))
    peft_model = PeftModel.from_pretrained(base, out / "adapter")
    assert any("lora_A" in n for n, _ in peft_model.named_parameters())


def _greedy_by_hand(module, batch, b: int, max_new_tokens: int) -> str:
    """Row b decoded one token at a time with full forwards (no KV cache): argmax, placeholder banned."""
    net, row = module.net, batch.input_ids[b][batch.attention_mask[b] == 1]
    eos, new = set(net._eos_ids()), []
    for _ in range(max_new_tokens):
        ids = torch.cat([row, torch.tensor(new, dtype=torch.long)])[None]
        logits = net(ids, torch.ones_like(ids), batch.features[b:b + 1], batch.feature_lengths[b:b + 1])[0, -1]
        logits[module.audio_token_spec.placeholder_token_id] = float("-inf")
        new.append(int(logits.argmax()))
        if new[-1] in eos:
            break
    return module.tokenizer.decode(new, skip_special_tokens=True)


def test_generate_answers_each_item_with_its_greedy_decode(trained):
    module = trained["module"]
    dm = tiny_datamodule(tiny_shards(trained["tmp"] / "gen", n=10), module)
    batch = next(iter(dm.generation_dataloader("val")))
    module.eval()
    answers = module.generate(batch, max_new_tokens=4)
    with torch.no_grad():
        expected = [_greedy_by_hand(module, batch, b, 4) for b in range(len(batch))]
    assert len(answers) == len(batch) and answers == expected
    assert any(expected)  # not a comparison of empty strings


def _masked_ce_by_hand(logits: torch.Tensor, labels: torch.Tensor, real: list[bool]) -> float:
    """Mean of -log p(label) over answer tokens of the real rows, one token at a time."""
    logp = torch.log_softmax(logits.double(), dim=-1)
    total, n = 0.0, 0
    for b in (b for b, keep in enumerate(real) if keep):
        for t in range(labels.shape[1] - 1):
            if labels[b, t + 1] != -100:
                total, n = total - float(logp[b, t, labels[b, t + 1]]), n + 1
    return total / n


def test_training_loss_is_the_masked_token_cross_entropy_without_filler_items(trained):
    from dataclasses import replace

    module, batch = tiny_module(), trained["batch"]  # outside a Trainer: logging is a no-op
    module.on_load_checkpoint(load_verified(trained["ckpt"]))
    module.eval()
    pad = torch.tensor([False, True] + [False] * (len(batch) - 2))  # meta still says real: the tensor decides
    with torch.no_grad():
        logits = module(batch)
        loss = float(module.training_step(batch, 0))
        padded_loss = float(module.training_step(replace(batch, is_pad=pad), 1))
    assert loss == pytest.approx(_masked_ce_by_hand(logits, batch.labels, [True] * len(batch)), rel=1e-5)
    assert padded_loss == pytest.approx(_masked_ce_by_hand(logits, batch.labels, (~pad).tolist()), rel=1e-5)
    assert padded_loss != pytest.approx(loss, rel=1e-4)


def test_corrupted_checkpoint_is_refused_with_its_name(trained, tmp_path):
    bad = tmp_path / "bad.ckpt"
    data = bytearray(trained["ckpt"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    (tmp_path / "bad.ckpt.ok").write_text((trained["ckpt"].parent / (trained["ckpt"].name + ".ok")).read_text())
    with pytest.raises(RuntimeError, match="bad.ckpt"):
        load_verified(bad)


def test_per_source_validation_loss_is_the_token_mean_of_each_source(tmp_path):
    from paralm.data.datamodule import MixtureDataModule
    from paralm.data.sources import SourceSpec
    from paralm.lit_module import token_losses

    torch.manual_seed(0)
    shards, other = tiny_shards(tmp_path / "a"), tiny_shards(tmp_path / "b", seed=1, durations=(0.4, 0.9))
    module = tiny_module()
    dm = MixtureDataModule(
        train_sources=[SourceSpec(name="general", path=str(shards), split="train")],
        val_sources=[SourceSpec(name="va", path=str(shards), split="val"),
                     SourceSpec(name="vb", path=str(other), split="val")],
        batch_size=3, num_workers=0)
    dm.attach(module.tokenizer, module.audio_token_spec)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path)
    logged = trainer.validate(module, datamodule=dm, verbose=False)[0]

    expected: dict[str, list[float]] = {}
    module.eval()
    with torch.no_grad():
        for batch in dm.val_dataloader():
            sums, counts = token_losses(module(batch), batch.labels)
            for name, s, c, m in zip(batch.sources, sums.tolist(), counts.tolist(), batch.meta, strict=True):
                if not m["is_pad"]:
                    acc = expected.setdefault(name, [0.0, 0.0])
                    acc[0], acc[1] = acc[0] + s, acc[1] + c
    assert set(expected) == {"va", "vb"} and expected["va"][0] / expected["va"][1] != pytest.approx(
        expected["vb"][0] / expected["vb"][1], rel=1e-3)
    for name, (s, c) in expected.items():
        assert logged[f"val/loss_{name}"] == pytest.approx(s / c, rel=1e-5)


def test_several_ranks_without_datamodule_names_skip_per_source_losses_instead_of_failing():
    from paralm.data.source_metrics import StageSourceLosses

    several = StageSourceLosses(world_size=2)  # a DDP run fed by plain loaders: no source names
    several.update("val", ["a"], torch.tensor([2.0]), torch.tensor([1]))
    assert several.aggregator("val") is None
    single = tiny_module().source_losses  # one process registers names as they come
    single.update("val", ["a", "b"], torch.tensor([2.0, 6.0]), torch.tensor([1, 3]))
    assert single.aggregator("val").compute() == {"a": 2.0, "b": 2.0}
    assert single.aggregator("train").compute() == {}  # another stage's aggregator saw nothing
