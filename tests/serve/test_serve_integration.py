"""QA generation against a real OpenAI-compatible server: `transformers serve` running a tiny random model.

The model's output is noise, so this checks the plumbing, not the pairs: requests reach a real server,
its token usage is counted, and invalid generations are counted and listed, never fatal.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from genkit import clip_metas, write_clips

from paralm.creation.generate import main as generate_main
from paralm.fault.exits import EXIT_NOTHING_USABLE, FaultExit

SERVING_DEPS = ("fastapi", "uvicorn")
MISSING = [m for m in SERVING_DEPS if importlib.util.find_spec(m) is None]
CLI = Path(sys.executable).with_name("transformers")
CLI = str(CLI) if CLI.exists() else shutil.which("transformers")

pytestmark = [
    pytest.mark.serve,
    pytest.mark.skipif(bool(MISSING) or CLI is None,
                       reason=f"`transformers serve` needs transformers[serving] (missing: {MISSING or 'the CLI'})"),
]


def tiny_chat_model(folder: Path) -> Path:
    """A 1-layer random Llama with a byte-level BPE tokenizer that has a chat template, saved locally."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(['{"pairs": [{"type": "C", "question": "q", "answer": "a"}]}'] * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.chat_template = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
                          "{% if add_generation_prompt %}<s>assistant: {% endif %}")
    fast.save_pretrained(folder)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                      bos_token_id=0, eos_token_id=1, pad_token_id=2)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"transformers serve exited with {proc.returncode}: {proc.stdout.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"transformers serve did not become healthy within {timeout_s}s")


@contextlib.contextmanager
def transformers_serve(model: str, timeout_s: float = 90.0) -> Iterator[str]:
    """`transformers serve MODEL` offline on CPU at a free local port; yields its /v1 base URL and stops it
    (this module's tiny model and test_real_serve.py's SmolLM2 both run behind it)."""
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.Popen([CLI, "serve", model, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", proc, timeout_s=timeout_s)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def served_model(tmp_path):
    model = str(tiny_chat_model(tmp_path / "tiny-chat"))
    with transformers_serve(model) as base_url:
        yield base_url, model


def test_generation_talks_to_transformers_serve_and_counts_invalid_generations(tmp_path, served_model):
    base_url, model = served_model
    metas = clip_metas(3)
    src = write_clips(tmp_path / "src", metas)
    out = tmp_path / "out"
    try:  # a deliberate stop is a FaultExit that the command guard turns into its exit code
        code = generate_main([str(src), "--out", str(out), "--backend", "openai", "--base-url", base_url,
                              "--model", model, "--max-tokens", "24", "--invalid-retries", "1", "--concurrency", "1",
                              "--timeout-s", "30", "--max-retries", "1", "--quiet"])
    except FaultExit as stop:
        code = stop.exit_code
    # a random-weight model rarely writes valid JSON: with no pair at all the run must end "nothing usable"
    # (exit 5, report and failures in the state folder), never as a complete empty set
    where = out if (out / "generate_report.json").exists() else Path(f"{out}.state")
    report = json.loads((where / "generate_report.json").read_text())
    usage = report["usage_this_run"]
    assert usage["requests_sent"] >= len(metas) and usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    clips = report["clips"]
    assert clips["with_pairs"] + clips["all_filtered"] + clips["failed"] == len(metas)
    if clips["with_pairs"] == 0:
        assert code == EXIT_NOTHING_USABLE and not (out / "index.json").exists()
    else:
        assert code in (0, EXIT_NOTHING_USABLE)
    failures = [json.loads(x) for x in (where / "failures.jsonl").read_text().splitlines()]
    assert {f["reason"] for f in failures} <= {"not_json", "schema_invalid", "too_few_pairs"}
    # each failed clip was sampled twice (one retry with a new sample index), both invalid and counted
    assert sum(report["invalid_generations"].values()) >= 2 * len(failures)
