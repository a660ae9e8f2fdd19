"""Start `paralm serve` as a child process on a free loopback port, wait until it answers, always stop it.

Used by the tests and benchmarks/bench_serve.py (and handy in scripts): the server is stopped on every
way out of the `with` block, including failures, so no server outlives its caller.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalServer:
    """`with LocalServer(export, ["--max-batch", "8"]) as server: server.base_url ...`"""

    def __init__(self, model: str | Path, args: list[str] | None = None, env: dict | None = None,
                 key: str | None = None, startup_s: float = 240.0, log_path: str | Path | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.key = key
        exe = Path(sys.executable).with_name("paralm")
        self.cmd = [str(exe), "serve", str(model), "--port", str(self.port), *(args or [])]
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
        self.startup_s = startup_s
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> LocalServer:
        out = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115 (closed in stop)
        self._out = out
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_s
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"paralm serve exited with {self.proc.returncode} before answering "
                                   f"(log: {self.log_path})")
            try:
                urllib.request.urlopen(urllib.request.Request(f"{self.base_url}/models", headers=headers), timeout=2)
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise TimeoutError(f"paralm serve did not answer within {self.startup_s:g} s")

    def stats(self) -> dict:
        import json

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/paralm/stats", timeout=10) as reply:
            return json.loads(reply.read())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if self._out not in (None, subprocess.DEVNULL):
            self._out.close()
            self._out = None
