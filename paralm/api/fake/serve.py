"""Run the fake OpenAI-compatible server in its own process.

Benchmarks use this so that the server's threads do not compete with the client for one Python
interpreter lock; a run then measures the client, not the test harness. Usage:

    python -m paralm.api.fake.serve --latency-s 0.05 --fault 429=0.1
    # prints the base URL on the first line, serves until stdin is closed

`GET /fake/stats` on the server reports the chat requests it has seen and the tokens it billed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from paralm.api.fake.server import FakeOpenAIServer


def _parse_faults(items: list[str]) -> dict[str, float]:
    faults: dict[str, float] = {}
    for item in items:
        name, sep, prob = item.partition("=")
        if not sep:
            raise ValueError(f"--fault expects NAME=PROBABILITY, got {item!r}")
        faults[name] = float(prob)
    return faults


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the fake OpenAI-compatible API on 127.0.0.1 until stdin closes.")
    parser.add_argument("--latency-s", type=float, default=0.0, help="seconds each request waits before its answer")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault draw")
    parser.add_argument("--fault", action="append", default=[], help="NAME=PROBABILITY, repeatable")
    args = parser.parse_args(argv)
    with FakeOpenAIServer(latency_s=args.latency_s, seed=args.seed, faults=_parse_faults(args.fault)) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()  # the parent closes our stdin to stop us


class FakeServerProcess:
    """Context manager: the fake server in a child process; `.base_url`, `.stats()`.

    Args:
        latency_s: seconds each request waits before its answer.
        faults: probability per fault name (see `paralm.api.fake.faults.FAULTS`).
        seed: seed of the fault draw.
    """

    def __init__(self, latency_s: float = 0.0, faults: dict[str, float] | None = None, seed: int = 0) -> None:
        self.args = ["--latency-s", str(latency_s), "--seed", str(seed)]
        for name, prob in (faults or {}).items():
            self.args += ["--fault", f"{name}={prob}"]
        self.base_url = ""
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> FakeServerProcess:
        root = str(Path(__file__).resolve().parents[3])
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "paralm.api.fake.serve", *self.args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=root,
        )
        self.base_url = self._proc.stdout.readline().strip()
        if not self.base_url.startswith("http://"):
            self.__exit__()
            raise RuntimeError(f"fake server process did not start (first line: {self.base_url!r})")
        return self

    def stats(self) -> dict:
        """{"chat_requests", "prompt_tokens", "completion_tokens", "total_tokens"} seen by the server."""
        root = self.base_url.rsplit("/v1", 1)[0]
        with urllib.request.urlopen(f"{root}/fake/stats", timeout=10) as reply:
            return json.loads(reply.read())

    def __exit__(self, *exc: object) -> None:
        if self._proc is None:
            return
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()
        self._proc = None


if __name__ == "__main__":
    main()
