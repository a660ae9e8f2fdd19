"""A generation run killed half-way (SIGKILL) and run again sends nothing for finished clips and ends with
exactly the output of an uninterrupted run."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fake_openai_server import FakeOpenAIServer
from genkit import clip_metas, prompt_fields, scripted_reply, write_clips

from paralm.creation.generate import main as generate_main

REPO = Path(__file__).resolve().parents[2]


def argv(src: Path, out: Path, url: str) -> list[str]:
    return [str(src), "--out", str(out), "--backend", "openai", "--base-url", url, "--model", "gen-test",
            "--concurrency", "2", "--quiet"]


def journaled_keys(path: Path) -> set[str]:
    """Keys of complete journal lines (a torn last line does not count)."""
    raw = path.read_bytes() if path.exists() else b""
    lines = raw.split(b"\n")[:-1]
    return {json.loads(line)["key"] for line in lines[1:]}


def output_digest(out: Path) -> dict[str, str]:
    """Hashes of everything that makes up the output except the run report (which counts this run's usage)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())
            if p.name != "generate_report.json"}


def test_killed_run_resumes_without_resending_and_matches_an_uninterrupted_run(tmp_path):
    metas = clip_metas(16)
    text_to_key = {m["transcript"]: m["key"] for m in metas}
    src = write_clips(tmp_path / "src", metas)
    out = tmp_path / "out"
    journal = Path(f"{out}.state") / "journal.jsonl"
    with FakeOpenAIServer(reply_fn=scripted_reply, latency_s=0.25) as server:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        cmd = [sys.executable, "-m", "paralm.cli", "data", "generate", *argv(src, out, server.base_url)]
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(journaled_keys(journal)) < 5 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
        finished = journaled_keys(journal)
        assert 5 <= len(finished) < len(metas) and not out.exists()

        time.sleep(0.3)  # let replies to the killed run's in-flight requests land before clearing the log
        server.clear_log()
        assert generate_main(argv(src, out, server.base_url)) == 0
        resent = {text_to_key[prompt_fields(e["body"])[0]] for e in server.chat_requests()}
        assert not resent & finished
        assert resent <= {m["key"] for m in metas} - finished

        reference = tmp_path / "reference"
        assert generate_main(argv(src, reference, server.base_url)) == 0
    assert output_digest(out) == output_digest(reference)
    assert json.loads((out / "generate_report.json").read_text())["clips"]["written"] == len(metas)

    before = len(server.chat_requests())
    assert generate_main(argv(src, out, "http://127.0.0.1:9/v1")) == 0  # finished output: nothing to do
    assert len(server.chat_requests()) == before
