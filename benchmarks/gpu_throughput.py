"""GPU throughput of the project's training step against a bare transformers + peft loop, on one GPU.

    python benchmarks/gpu_throughput.py                    # about 6 minutes on one H100
    python benchmarks/gpu_throughput.py --deadline 300     # skip what would not fit in 5 minutes
    python benchmarks/gpu_throughput.py --smoke            # tiny shapes on CPU, under 30 s (CI)

Configurations, in priority order (each printed and appended to the results file when it finishes):
    1B eager bucketed     Whisper-large-v3 encoder + 1B-class Llama, LoRA r16, 6-s clips on their real length
    1B pad-to-30-s        the same with every clip's encoder input padded to 30 s (padding masked)
    8B eager              8B-class Llama
    8B compiled           RuntimeConfig(compile=True) (torch.compile of the LLM forward)
    1B FSDP               FSDP over the PEFT model (the project's PeftFSDPStrategy, one GPU)
Each LLM shape also runs the bare loop on the same token batches (bench_gpu_steps.bare_loop); "vs bare"
is the project's tokens/s over the bare loop's. Targets (docs/performance.md): 8B >= 0.9x bare; 1B >= 140
samples/s and >= 1.5x pad-to-30-s; encoder <= 10 % of the step at 8B, <= 20 % at 1B.

Only torch, lightning, transformers and peft are needed on this path (tests run --smoke with wandb,
webdataset, openai, soundfile and soxr blocked).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))  # `callbacks` is a top-level package of the repository

import torch  # noqa: E402
from bench_gpu_shapes import SHAPES  # noqa: E402
from bench_gpu_steps import bare_loop, project_run, release  # noqa: E402


@dataclass(frozen=True)
class Config:
    """One row of the benchmark.

    Args:
        name: row label.
        shape: key of SHAPES (replaced by "tiny" under --smoke).
        estimate_s: expected seconds on one H100 (the deadline skips a row that would not fit).
        pad_to_30: encoder input padded to 30 s.
        compile: torch.compile of the LLM forward.
        fsdp: FSDP strategy over the PEFT model.
        bare: also run the bare loop of this shape (once per shape).
        needs_cuda: skipped on CPU.
        baseline_of: this row is the baseline of that row (the note gives that row's samples/s over this one's).
    """

    name: str
    shape: str
    estimate_s: float
    pad_to_30: bool = False
    compile: bool = False
    fsdp: bool = False
    bare: bool = False
    needs_cuda: bool = False
    baseline_of: str | None = None


CONFIGS = (
    Config("1B eager bucketed", "1B", 60, bare=True),
    Config("1B pad-to-30-s", "1B", 45, pad_to_30=True, baseline_of="1B eager bucketed"),
    Config("8B eager", "8B", 120, bare=True),
    Config("8B compiled", "8B", 180, compile=True, needs_cuda=True),
    Config("1B FSDP (PEFT model, 1 GPU)", "1B", 100, fsdp=True, needs_cuda=True),
)
COLUMNS = ("config", "samples/s", "tokens/s", "step ms", "encoder share", "MFU", "bare tokens/s", "vs bare",
           "peak GiB", "note")


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class Results:
    """Prints every row and appends it to the results file (if any) as soon as it exists."""

    def __init__(self, out: Path | None, device: torch.device, smoke: bool) -> None:
        self.out = out
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        setting = "tiny shapes, fp32, 1-s clips (a check that the path runs, not a measurement)" if smoke else \
            "bf16-mixed, LoRA r16, random weights, 6-s clips, 16 clips per step"
        head = [f"# GPU throughput ({name})", "",
                f"`python benchmarks/gpu_throughput.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}, "
                f"torch {torch.__version__}: {setting}.", "",
                "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        self._emit("\n".join(head) + "\n", mode="w")

    def _emit(self, text: str, mode: str = "a") -> None:
        print(text, end="", flush=True)
        if self.out is not None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            with open(self.out, mode, encoding="utf-8") as f:
                f.write(text)

    def row(self, config: str, run: dict | None = None, bare: dict | None = None, note: str = "") -> None:
        run = run or {}
        ratio = run["tokens_per_s"] / bare["tokens_per_s"] if run and bare else None
        cells = [config, _fmt(run.get("samples_per_s"), ".1f"), _fmt(run.get("tokens_per_s"), ",.0f"),
                 _fmt(run.get("step_ms"), ".0f"), _fmt(run.get("encoder_share"), ".1%"), _fmt(run.get("mfu"), ".1%"),
                 _fmt(bare and bare["tokens_per_s"], ",.0f"), _fmt(ratio, ".2f"), _fmt(run.get("peak_gb"), ".1f"), note]
        self._emit("| " + " | ".join(cells) + " |\n")


def run_all(args: argparse.Namespace) -> int:
    device = torch.device("cpu" if args.smoke else "cuda")
    if not args.smoke and not torch.cuda.is_available():
        print("no CUDA device: run with --smoke for the CPU check", file=sys.stderr)
        return 2
    warmup, steps = (1, 1) if args.smoke else (args.warmup, args.steps)
    results, bare_by_shape, done, start = Results(args.out, device, args.smoke), {}, {}, time.perf_counter()
    for config in CONFIGS:
        shape = SHAPES["tiny" if args.smoke else config.shape]
        elapsed = time.perf_counter() - start
        if config.needs_cuda and device.type != "cuda":
            results.row(config.name, note="skipped: needs CUDA")
            continue
        if not args.smoke and elapsed + config.estimate_s > args.deadline:
            results.row(config.name, note=f"skipped: {elapsed:.0f} s + ~{config.estimate_s:.0f} s > deadline")
            continue
        try:
            run = project_run(shape, device, warmup + 2 * config.compile, steps, config.pad_to_30,
                              config.compile, config.fsdp)
            if config.bare:
                bare_by_shape[shape.name] = bare_loop(shape, run["batches"], device, warmup, steps)
        except (RuntimeError, ValueError, torch.OutOfMemoryError) as err:  # reported in the table, run goes on
            release()
            results.row(config.name, note=f"failed: {type(err).__name__}: {str(err).splitlines()[0][:120]}")
            continue
        note = f"{run['tokens_per_step']} tokens/step, {time.perf_counter() - start - elapsed:.0f} s"
        if config.baseline_of in done:
            note += f"; {config.baseline_of} is {done[config.baseline_of] / run['samples_per_s']:.2f}x this"
        done[config.name] = run["samples_per_s"]
        results.row(config.name, run, bare_by_shape.get(shape.name), note)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()  # the FSDP row started one
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Project training step vs bare transformers+peft loop on one GPU")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on CPU (checks the path runs)")
    parser.add_argument("--deadline", type=float, default=480.0, help="seconds; skip rows that would not fit")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per configuration")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    parser.add_argument("--out", type=Path, default=None,
                        help="results file (default benchmarks/gpu_results.md; none under --smoke)")
    args = parser.parse_args(argv)
    if args.out is None and not args.smoke:
        args.out = HERE / "gpu_results.md"
    torch.manual_seed(0)
    torch.set_float32_matmul_precision("high")  # fp32 trained parts use TF32 tensor cores (project and bare alike)
    return run_all(args)


if __name__ == "__main__":
    sys.exit(main())
