"""(e) Peak memory of a debug fit, and what chunked cross-entropy and gradient checkpointing save.

Each configuration runs in its own child process (`python bench_memory.py --child JSON`), so the
peak resident set (ru_maxrss) is that run's alone. Beside the process peak, which on CPU also holds
the interpreter, torch and Lightning (a constant of several hundred MB), the child measures what the
backward pass keeps alive: the bytes of every tensor autograd saves during one forward (unique
storages), which is the part of the peak that the optimisations act on. That forward runs at the end of
the fit, in the module state the fit itself set (no `.train()` here): gradient checkpointing only acts
when the LoRA path of the frozen LLM is in train mode, so a benchmark that switched modes itself could
report a saving that `paralm fit` never had.

Configurations: the debug model as experiments/debug_cpu.yaml builds it, with and without gradient
checkpointing; then the same model with a 64k-token output head (where the loss dominates memory, as
with real LLM vocabularies) with the loss computed at once and in chunks (paralm/perf/chunked_ce.py).
`--quick` runs the first configuration only.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from bench_common import duration_mix, source, tiny_config, write_mix_shards

from paralm.lit_module import token_losses

CONFIGS = {
    "debug fit (experiments/debug_cpu.yaml model)": {},
    "debug fit, gradient checkpointing": {"gradient_checkpointing": True},
    "64k vocabulary, loss at once": {"vocab": 65536},
    "64k vocabulary, chunked_ce=128": {"vocab": 65536, "chunked_ce": 128},
}
QUICK_CONFIGS = ("debug fit (experiments/debug_cpu.yaml model)",)


def saved_tensor_bytes(module, batch) -> int:
    """Bytes of the distinct storages autograd keeps for backward during one training forward."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        sums, counts = token_losses(module(batch), batch.labels, module.runtime.chunked_ce)
        loss = sums.sum() / counts.sum().clamp(min=1)
    loss.backward()
    return sum(storages.values())


class SavedAtTrainEnd(pl.Callback):
    """Measures `saved_tensor_bytes` at the end of fit, with the modes the fit itself left (no `.train()` here)."""

    def __init__(self, batch_fn) -> None:
        self.batch_fn = batch_fn
        self.result: dict = {}

    def on_train_end(self, trainer, module) -> None:
        batch = self.batch_fn()
        self.result = {"saved": saved_tensor_bytes(module, batch), "tokens": int(batch.attention_mask.sum()),
                       "modules_training": sum(m.training for m in module.net.modules()),
                       "modules": sum(1 for _ in module.net.modules())}


def child(options: dict) -> dict:
    """One debug fit with `options`; returns peak RSS and saved-activation bytes."""
    from paralm.data.datamodule import MixtureDataModule
    from paralm.lit_module import RuntimeConfig, SpeechLMModule

    torch.set_num_threads(1)
    cfg = tiny_config()
    if "vocab" in options:
        cfg.llm.config = {**cfg.llm.config, "vocab_size": options["vocab"]}
    runtime = RuntimeConfig(chunked_ce=options.get("chunked_ce", 0),
                            gradient_checkpointing=options.get("gradient_checkpointing", False))
    module = SpeechLMModule(cfg, runtime=runtime)
    dm = MixtureDataModule(train_sources=[source(Path(options["shards"]))], batch_size=8, num_workers=0,
                           samples_per_epoch=8 * options["steps"])
    dm.attach(module.tokenizer, module.audio_token_spec)
    probe = SavedAtTrainEnd(lambda: max(dm.train_dataloader(), key=lambda b: b.input_ids.numel()))
    trainer = pl.Trainer(accelerator="cpu", max_steps=options["steps"], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         callbacks=[probe])
    trainer.fit(module, datamodule=dm)
    r = probe.result
    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "saved_mb": r["saved"] / 2**20, "tokens": r["tokens"],
            "modules_training": f"{r['modules_training']}/{r['modules']}"}


def run(scale, workdir: Path, seed: int = 0) -> dict:
    shards = Path(workdir) / "memory_shards"
    if not (shards / "index.json").is_file():
        write_mix_shards(shards, duration_mix(16, seed + 2))
    steps = max(2, scale.train_steps // 4)
    results = {}
    names = QUICK_CONFIGS if scale.train_steps < 4 else tuple(CONFIGS)
    for name in names:
        options = CONFIGS[name]
        payload = json.dumps({**options, "shards": str(shards), "steps": steps})
        out = subprocess.run([sys.executable, __file__, "--child", payload], capture_output=True, text=True,
                             check=False, cwd=Path(__file__).parent)
        if out.returncode != 0:
            raise RuntimeError(f"memory child {name!r} failed:\n{out.stderr[-3000:]}")
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    rows = [(f"{name}: peak RSS MB / kept for backward MB",
             f"{r['peak_rss_mb']:.0f} / {r['saved_mb']:.1f}") for name, r in results.items()]
    for new, old in (("debug fit, gradient checkpointing", "debug fit (experiments/debug_cpu.yaml model)"),
                     ("64k vocabulary, chunked_ce=128", "64k vocabulary, loss at once")):
        if new in results:
            rows.append((f"{new} / {old}: peak RSS, kept for backward",
                         f"{results[new]['peak_rss_mb'] / results[old]['peak_rss_mb']:.2f}, "
                         f"{results[new]['saved_mb'] / results[old]['saved_mb']:.2f}"))
    return {"results": results, "rows": rows, "pass": None}  # a measurement, no target


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
    else:
        sys.exit("usage: bench_memory.py --child JSON (run through benchmarks/run.py --only e)")
