"""The two things the GPU benchmark times: the project's training step and a bare transformers + peft loop.

Project step: `SpeechLMModule` in a Lightning `Trainer` (precision bf16-mixed on GPU), fed the project's
collated batches: encoder on the real length -> projector -> LoRA LLM -> loss -> backward -> AdamW, with
`TelemetryCallback` measuring samples/s, tokens/s and MFU over the timed steps (warm-up excluded).
Bare loop: the same LLM shape built directly with transformers (bf16 base, sdpa), the same LoRA via
peft (fp32 adapters), AdamW, autocast bf16, on the same input_ids / attention_mask / labels: the
reference that says how much the project's audio path, splicing and Lightning cost on top.
"""

from __future__ import annotations

import gc
import time
from contextlib import nullcontext

import lightning.pytorch as pl
import torch
from bench_gpu_shapes import LORA, Cycle, Shape, speech_lm_config, synthetic_batches
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM

from callbacks.telemetry import TelemetryCallback
from paralm.lit_module import RuntimeConfig, SpeechLMModule
from paralm.perf.flops import lm_step_flops
from paralm.perf.peak import peak_flops


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def release() -> None:
    """Free what the previous configuration left on the device."""
    torch._dynamo.reset()  # compiled graphs hold on to the previous model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _fsdp_strategy():
    """The project's FSDP for PEFT models: transformer layers and trained leaves as separate units."""
    from paralm.peft_fsdp import PeftFSDPStrategy

    return PeftFSDPStrategy()


def encoder_ms(module: SpeechLMModule, batches, device: torch.device, repeats: int = 3) -> float:
    """Milliseconds of one encoder forward on a batch (as in the step: autocast, no gradient)."""
    encoder = module.net.encoder
    inputs = [(b.features.to(device), b.feature_lengths.to(device)) for b in batches]
    with torch.no_grad(), _autocast(device):
        encoder(*inputs[0])
        _sync(device)
        start = time.perf_counter()
        for i in range(repeats):
            encoder(*inputs[i % len(inputs)])
        _sync(device)
    return 1000 * (time.perf_counter() - start) / repeats


def project_run(shape: Shape, device: torch.device, warmup: int, steps: int, pad_to_30: bool = False,
                compile: bool = False, fsdp: bool = False) -> dict:
    """Train warmup + steps steps through Lightning; telemetry of the timed steps, encoder share, peak memory."""
    runtime = RuntimeConfig(compile=compile)
    module = SpeechLMModule(speech_lm_config(shape), runtime=runtime)
    batches = synthetic_batches(module.tokenizer, module.audio_token_spec, shape, 4, pad_to_30)
    telemetry = TelemetryCallback(log_every_n_steps=steps, skip_first_steps=warmup)
    on_gpu = device.type == "cuda"
    trainer = pl.Trainer(accelerator="gpu" if on_gpu else "cpu", devices=1, max_steps=warmup + steps,
                         precision="bf16-mixed" if on_gpu else "32-true",
                         strategy=_fsdp_strategy() if fsdp else "auto", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=0, callbacks=[telemetry])
    trainer.fit(module, train_dataloaders=Cycle(batches, warmup + steps))
    m = telemetry.last_metrics
    step_ms = 1000 * shape.batch_size / m["perf/samples_per_s"]
    enc = None if fsdp else encoder_ms(module, batches, device)
    out = {
        "samples_per_s": m["perf/samples_per_s"], "tokens_per_s": m["perf/tokens_per_s"], "mfu": m["perf/mfu"],
        "step_ms": step_ms, "encoder_share": None if enc is None else enc / step_ms,
        "tokens_per_step": int(batches[0].attention_mask.sum()), "batches": batches,
        "peak_gb": torch.cuda.max_memory_allocated(device) / 2**30 if on_gpu else None,
    }
    del trainer, module
    release()
    return out


def bare_loop(shape: Shape, batches, device: torch.device, warmup: int, steps: int) -> dict:
    """transformers + peft LoRA training on the project's token batches; tokens/s and MFU."""
    on_gpu = device.type == "cuda"
    options = dict(shape.llm)
    config = AutoConfig.for_model(options.pop("model_type"), **options)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa",
                                                 dtype=torch.bfloat16 if on_gpu else torch.float32)
    lora = LoraConfig(r=LORA.r, lora_alpha=LORA.alpha, lora_dropout=LORA.dropout,
                      target_modules=list(LORA.target_modules), task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    inputs = [(b.input_ids.to(device), b.attention_mask.to(device), b.labels.to(device)) for b in batches]
    step_flops = [lm_step_flops(model, mask).total for _, mask, _ in inputs]  # counted outside the timed loop
    tokens, flops, start = 0, 0.0, 0.0
    for i in range(warmup + steps):
        ids, mask, labels = inputs[i % len(inputs)]
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        with _autocast(device):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warmup:
            tokens += int(batches[i % len(inputs)].attention_mask.sum())
            flops += step_flops[i % len(inputs)]
    _sync(device)
    seconds = time.perf_counter() - start
    peak, _ = peak_flops(device)
    del model, opt, inputs
    release()
    return {"tokens_per_s": tokens / seconds, "mfu": flops / seconds / peak}
