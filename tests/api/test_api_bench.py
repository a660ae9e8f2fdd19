"""The throughput benchmark helper runs end to end: concurrency pays, and a cached rerun sends nothing."""

from __future__ import annotations

from paralm.api.bench import measure_throughput


def test_concurrent_client_outruns_sequential_and_rerun_sends_zero_requests():
    report = measure_throughput(n=96, concurrency=16, latency_s=0.05, n_sequential=8)
    assert report["concurrent_failures"] == 0
    # The full benchmark (concurrency 32) asserts >= 20x; on a small shared CI box keep a loose floor.
    assert report["speedup"] > 4.0
    assert report["rerun_requests_sent"] == 0 and report["rerun_server_requests"] == 0
    assert report["rerun_cache_hits"] == 96 and report["rerun_all_cached"]
