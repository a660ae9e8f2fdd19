"""Throughput of the chat client against the local fake server, versus a naive sequential client.

The point being measured: judging or generating thousands of items is latency-bound, so a pooled,
concurrent client should beat a sequential one that opens a connection per call by roughly the
concurrency, and an identical rerun must cost nothing because every answer is cached.
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from paralm.api.chat_types import ChatRequest, ClientConfig
from paralm.api.client import ChatClient
from paralm.api.fake.serve import FakeServerProcess
from paralm.api.transport import _http


def _requests(n: int, prefix: str) -> list[ChatRequest]:
    return [ChatRequest(messages=[{"role": "user", "content": f"{prefix} item {i}: how does this sound?"}])
            for i in range(n)]


def sequential_fresh_connection(base_url: str, model: str, reqs: list[ChatRequest]) -> float:
    """Send `reqs` one after another, each through a new HTTP client (new connection); returns seconds."""
    start = time.perf_counter()
    for req in reqs:
        with _http.Client(timeout=30.0) as http:
            reply = http.post(f"{base_url}/chat/completions", json={"model": model, **req.api_params()},
                              headers={"Authorization": "Bearer EMPTY"})
            reply.raise_for_status()
            json.loads(reply.content)["choices"][0]["message"]["content"]
    return time.perf_counter() - start


def sequential_bare_connection(base_url: str, model: str, reqs: list[ChatRequest]) -> float:
    """The cheapest connection-per-call client (stdlib http.client, no client object to build); seconds.

    Reported beside the fresh-client baseline so the speedup is not credited to client construction.
    """
    parts = urlsplit(base_url)
    start = time.perf_counter()
    for req in reqs:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            body = json.dumps({"model": model, **req.api_params()})
            conn.request("POST", f"{parts.path}/chat/completions", body, {"Content-Type": "application/json"})
            reply = conn.getresponse()
            json.loads(reply.read())["choices"][0]["message"]["content"]
        finally:
            conn.close()
    return time.perf_counter() - start


def measure_throughput(n: int = 640, concurrency: int = 32, latency_s: float = 0.05,
                       n_sequential: int | None = None) -> dict:
    """Requests/s of ChatClient at `concurrency` vs sequential connection-per-call clients, plus a cached rerun.

    `speedup` compares with a client that builds a fresh HTTP client (new connection, new TLS
    context) per call, the common naive pattern; `speedup_vs_bare` with a bare stdlib connection per
    call, whose only cost beyond the server latency is the TCP connect.

    Args:
        n: requests for the concurrent client (and for the cached rerun).
        concurrency: ChatClient concurrency.
        latency_s: server latency per request.
        n_sequential: requests for the sequential client (default: enough for about 2 s).
    Returns:
        dict with both rates, their ratio, and what the rerun sent (must be 0).
    """
    n_sequential = n_sequential or max(10, min(n, int(2.0 / max(latency_s, 1e-3))))
    # The server runs in its own process so its threads do not share the client's interpreter lock.
    with tempfile.TemporaryDirectory() as tmp, FakeServerProcess(latency_s=latency_s) as server:
        cache = str(Path(tmp) / "bench.sqlite")
        config = ClientConfig(base_url=server.base_url, model="bench", concurrency=concurrency, cache_path=cache)
        seq_s = sequential_fresh_connection(server.base_url, "bench", _requests(n_sequential, "seq"))
        bare_s = sequential_bare_connection(server.base_url, "bench", _requests(n_sequential, "bare"))
        client = ChatClient(config)
        start = time.perf_counter()
        first = client.run_many(_requests(n, "conc"))
        conc_s = time.perf_counter() - start
        client.close_cache()
        failures = sum(1 for r in first if not hasattr(r, "text"))
        sent_before = server.stats()["chat_requests"]
        rerun = ChatClient(config)
        rerun_results = rerun.run_many(_requests(n, "conc"))
        rerun.close_cache()
        rerun_sent_server = server.stats()["chat_requests"] - sent_before
    seq_rps, bare_rps, conc_rps = n_sequential / seq_s, n_sequential / bare_s, n / conc_s
    return {
        "n": n, "n_sequential": n_sequential, "concurrency": concurrency, "latency_s": latency_s,
        "sequential_rps": round(seq_rps, 2), "sequential_bare_rps": round(bare_rps, 2),
        "concurrent_rps": round(conc_rps, 2), "speedup": round(conc_rps / seq_rps, 2),
        "speedup_vs_bare": round(conc_rps / bare_rps, 2), "concurrent_failures": failures,
        "rerun_requests_sent": rerun.usage.requests_sent, "rerun_server_requests": rerun_sent_server,
        "rerun_cache_hits": rerun.usage.cache_hits,
        "rerun_all_cached": all(getattr(r, "cached", False) for r in rerun_results),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Chat client throughput vs sequential clients on the fake server.")
    parser.add_argument("--n", type=int, default=640, help="requests for the concurrent client and the rerun")
    parser.add_argument("--concurrency", type=int, default=32, help="ChatClient concurrency")
    parser.add_argument("--latency-s", type=float, default=0.05, help="server latency per request")
    args = parser.parse_args(argv)
    print(json.dumps(measure_throughput(args.n, args.concurrency, args.latency_s), indent=2))


if __name__ == "__main__":
    main()
