"""The one OpenAI-compatible client, shared by QA generation and the judge. Never imports torch.

client.py       ChatClient (async; retries, Retry-After, cache, de-duplication, budget) and its types
chat_types.py   ClientConfig, ChatRequest, ChatResult
transport.py    one HTTP attempt through openai.AsyncOpenAI and the checks on its reply
retry.py        Retry-After parsing and jittered exponential backoff
errors.py       ApiError and its closed set of reasons
cache.py        crash-safe SQLite cache of finished completions
accounting.py   token, request and cost counters; the budget check and its exit (EXIT_BUDGET)
usage_check.py  vets the server's `usage` (missing/implausible counts are estimated and counted)
testing.py      FakeOpenAIServer: scripted replies, seeded faults, request log (tests, benchmarks)
fake_faults.py  the fake server's replies and fault registry
serve_fake.py   the fake server in its own process
bench.py        throughput: concurrent client vs sequential clients, and a cached rerun
"""
