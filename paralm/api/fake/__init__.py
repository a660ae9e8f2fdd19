"""The fake OpenAI-compatible server for tests and benchmarks (server, its replies and seeded faults,
and a runner in its own process). Kept apart from the production client in paralm/api: nothing in
paralm.api imports it except the benchmark harness (paralm.api.bench)."""
