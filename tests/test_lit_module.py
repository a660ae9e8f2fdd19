"""The LightningModule around SpeechLM: checkpoints hold only trained weights, round-trip exactly, export."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from trainkit import tiny_datamodule, tiny_module, tiny_shards

from paralm.checkpointing import AtomicCheckpointIO, load_verified
from paralm.export import export_checkpoint, load_trained
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


def test_generate_returns_one_string_per_item(trained):
    module = trained["module"]
    dm = tiny_datamodule(tiny_shards(trained["tmp"] / "gen", n=10), module)
    batch = next(iter(dm.generation_dataloader("val")))
    answers = module.generate(batch, max_new_tokens=4)
    assert len(answers) == len(batch) and all(isinstance(a, str) for a in answers)


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
    from types import SimpleNamespace

    module = tiny_module()
    module._trainer = SimpleNamespace(world_size=2)  # a DDP run fed by plain loaders: no source names
    module._accumulate_sources("val", ["a"], torch.tensor([2.0]), torch.tensor([1]))
    assert module._source_aggregator("val") is None
    module._trainer = SimpleNamespace(world_size=1)  # one process registers names as they come
    module._accumulate_sources("val", ["a", "b"], torch.tensor([2.0, 6.0]), torch.tensor([1, 3]))
    assert module._source_aggregator("val").compute() == {"a": 2.0, "b": 2.0}
    assert module._source_aggregator("train").compute() == {}  # another stage's aggregator saw nothing
