"""`paralm serve` throughput: requests/s at concurrency 16 vs 1 on the tiny model, p50/p95 latency, one run.

    python benchmarks/bench_serve.py            # prints the table
    python benchmarks/bench_serve.py --write    # also replaces its section in benchmarks/results.md

Builds a tiny random SpeechLM export, starts `paralm serve` on a free loopback port (stopped on every way
out), warms it up, then sends the same mix of 1-3 s clips with the real `openai` client: N requests one at a
time, then N from 16 threads at once. Batching is what makes concurrency 16 faster: the server's batch
counts are reported beside the rates. Needs the machine to itself (torch threads oversubscribe otherwise).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results.md"
SECTION = "## (s) paralm serve: concurrency 16 vs 1"


def tiny_export(folder: Path) -> Path:
    import torch

    from paralm.data.prompts import PromptConfig
    from paralm.model import export as export_io
    from paralm.model.builders import tiny_speech_lm_config
    from paralm.model.speech_lm import SpeechLM
    from paralm.prompt_record import prompt_record

    torch.manual_seed(1)
    model = SpeechLM.from_config(tiny_speech_lm_config())
    export_io.write(model, folder, prompt=prompt_record(PromptConfig(), []))
    (folder / "export_info.json").write_text(json.dumps({"global_step": 0}))
    return folder


def clips(n: int = 8) -> list[str]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        buf = io.BytesIO()
        sf.write(buf, (0.1 * rng.standard_normal(int(16000 * (1 + 2 * i / n)))).astype(np.float32), 16000, format="WAV")
        out.append(base64.b64encode(buf.getvalue()).decode())
    return out


def run_load(client, data: list[str], n: int, concurrency: int, max_tokens: int) -> dict:
    def one(i: int) -> float:
        start = time.perf_counter()
        client.chat.completions.create(model="bench", max_tokens=max_tokens, messages=[{"role": "user", "content": [
            {"type": "text", "text": "How does the speaker sound?"},
            {"type": "input_audio", "input_audio": {"data": data[i % len(data)], "format": "wav"}}]}])
        return time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = sorted(pool.map(one, range(n)))
    wall = time.perf_counter() - start
    return {"rps": n / wall, "p50": statistics.median(latencies),
            "p95": latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))], "n": n}


def measure(n: int, max_tokens: int) -> dict:
    import openai

    from paralm.serve.local_server import LocalServer

    with tempfile.TemporaryDirectory() as tmp:
        export = tiny_export(Path(tmp) / "export")
        args = ["--model-name", "bench", "--max-batch", "16", "--max-wait-ms", "10", "--max-new-tokens", str(max_tokens),
                "--log-level", "warning"]
        with LocalServer(export, args) as server:
            client = openai.OpenAI(base_url=server.base_url, api_key="EMPTY", max_retries=0, timeout=300)
            data = clips()
            run_load(client, data, 4, 1, max_tokens)  # warm-up
            one = run_load(client, data, n, 1, max_tokens)
            before = server.stats()
            many = run_load(client, data, n, 16, max_tokens)
            after = server.stats()
    batches = after["batches"] - before["batches"]
    return {"c1": one, "c16": many, "batches_c16": batches, "mean_batch_c16": many["n"] / max(batches, 1),
            "largest_batch": after["largest_batch"], "max_tokens": max_tokens}


def table(r: dict, seconds: float) -> str:
    c1, c16 = r["c1"], r["c16"]
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [f"{SECTION} ({seconds:.0f} s, {stamp})", "",
             f"`python benchmarks/bench_serve.py --write`: tiny random SpeechLM export, {c1['n']} requests per level, "
             f"1-3 s clips, greedy, max_tokens {r['max_tokens']}, real `openai` client, `--max-batch 16 --max-wait-ms 10`; "
             f"load average (1 min) at start {r['load']:.2f} on {os.cpu_count()} cores.",
             "", "| measure | concurrency 1 | concurrency 16 |", "|---|---|---|",
             f"| requests/s | {c1['rps']:.2f} | {c16['rps']:.2f} |",
             f"| latency p50 (s) | {c1['p50']:.3f} | {c16['p50']:.3f} |",
             f"| latency p95 (s) | {c1['p95']:.3f} | {c16['p95']:.3f} |",
             f"| server batches (mean size) | {c1['n']} (1.0) | {r['batches_c16']} ({r['mean_batch_c16']:.1f}) |",
             "", f"Throughput ratio concurrency 16 / 1: **{c16['rps'] / c1['rps']:.2f}x**.", ""]
    return "\n".join(lines)


def write_section(text: str) -> None:
    doc = RESULTS.read_text()
    pattern = re.compile(re.escape(SECTION) + r".*?(?=\n## |\Z)", re.S)
    doc = pattern.sub(lambda _: text.rstrip() + "\n", doc) if pattern.search(doc) else doc.rstrip() + "\n\n" + text
    RESULTS.write_text(doc)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=48, help="requests per concurrency level")
    p.add_argument("--max-tokens", type=int, default=16, help="answer length")
    p.add_argument("--write", action="store_true", help="replace this section of benchmarks/results.md")
    args = p.parse_args()
    start = time.perf_counter()
    load = os.getloadavg()[0]
    result = {**measure(args.requests, args.max_tokens), "load": load}
    text = table(result, time.perf_counter() - start)
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
