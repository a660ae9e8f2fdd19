"""(d) Judge requests/s: the pooled concurrent client vs sequential connection-per-call clients.

Runs paralm.api.bench.measure_throughput against the local fake OpenAI-compatible server (fixed
latency per request, its own process). Both sequential baselines are reported: a fresh HTTP client per
call (the common naive pattern) and a bare stdlib connection per call (only the TCP connect on top of
the server latency), so the speed-up is not credited to client construction. An identical rerun must
be answered entirely from the cache and send 0 requests.
"""

from __future__ import annotations

from bench_common import Scale

from paralm.api.bench import measure_throughput


def run(scale: Scale) -> dict:
    r = measure_throughput(n=scale.judge_requests, concurrency=32, latency_s=0.05,
                           n_sequential=scale.judge_sequential)
    return {
        **r,
        "rows": [
            (f"concurrent client (concurrency {r['concurrency']}, {r['n']} requests), requests/s",
             f"{r['concurrent_rps']:.1f}"),
            ("sequential, fresh HTTP client per call, requests/s", f"{r['sequential_rps']:.1f}"),
            ("sequential, bare connection per call, requests/s", f"{r['sequential_bare_rps']:.1f}"),
            ("speed-up vs fresh-client baseline (target >= 20x)", f"{r['speedup']:.1f}x"),
            ("speed-up vs bare-connection baseline", f"{r['speedup_vs_bare']:.1f}x"),
            ("identical rerun: requests sent (client / server), cache hits",
             f"{r['rerun_requests_sent']} / {r['rerun_server_requests']}, {r['rerun_cache_hits']}"),
        ],
        "pass": r["speedup"] >= 20.0 and r["rerun_requests_sent"] == 0 and r["rerun_server_requests"] == 0
        and r["concurrent_failures"] == 0,
    }
