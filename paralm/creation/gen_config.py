"""Settings of `paralm data generate`, one dataclass with a line per field (shown by `--help`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from paralm.api.accounting import check_budget_prices
from paralm.creation.gen_inputs import check_labels_source
from paralm.creation.qa_filters import FilterConfig

BACKEND_NAMES = ("openai", "template")


@dataclass
class GenerateConfig:
    """How implicit QA pairs are generated, filtered and stored.

    Args:
        backend: "openai" (any OpenAI-compatible endpoint) or "template" (no LLM).
        labels: label source shown to the generator: "gold" or "pred:<annotator>".
        permute_labels: when set, shuffle label sets across clips with this seed before generation (control).
        pairs_min: fewest pairs a clip must get for a generation to count as valid.
        pairs_max: most pairs kept per clip (the prompt asks for a seeded number in [pairs_min, pairs_max]).
        seed: seed of the per-clip pair counts, template choices and the first sampling seed.
        base_url: OpenAI-compatible endpoint root, e.g. http://127.0.0.1:8000/v1.
        model: model name sent to the endpoint.
        api_key_env: environment variable holding the API key (never the key itself).
        structured: send response_format=json_schema (servers that support structured output).
        temperature: sampling temperature of the generator.
        max_tokens: completion length cap per request.
        concurrency: clips generated at once (and requests in flight).
        timeout_s: per-request timeout in seconds.
        max_retries: client retries per request (429, 5xx, timeouts, unusable replies).
        retry_after_cap_s: longest Retry-After honoured; a longer one fails the request at once.
        backoff_base_s: first retry backoff ceiling in seconds (doubles per retry, jittered).
        backoff_max_s: largest retry backoff ceiling in seconds.
        invalid_retries: new samples asked for after an invalid generation (not JSON, wrong shape, too few pairs).
        budget_usd: stop sending requests once this much is spent (None: no cap).
        price_per_1k_prompt: USD per 1,000 prompt tokens, for cost accounting.
        price_per_1k_completion: USD per 1,000 completion tokens, for cost accounting.
        cache: SQLite API cache (default: <state>/api_cache.sqlite).
        state: folder for the journal and cache of a resumable run (default: <out>.state).
        eval_sets: evaluation shard folders the output must not overlap (by key and by QA text).
        eval_splits: only samples of these splits in `eval_sets` count as evaluation clips (a folder that
            holds train, val and test together); None: every sample in them.
        retry_failed: on resume, generate again for clips journaled as failed (asking anew: the attempts
            continue after the ones already made, so a cached invalid reply is never served again).
        min_success_rate: fewest clips with pairs, as a fraction of the clips not excluded as evaluation
            clips, for the run to count as usable (below: exit 5); no pair at all always fails.
        filters: thresholds of the pair filters.
    """

    backend: str = "template"
    labels: str = "gold"
    permute_labels: int | None = None
    pairs_min: int = 3
    pairs_max: int = 6
    seed: int = 0
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    structured: bool = False
    temperature: float = 0.7
    max_tokens: int = 1024
    concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 5
    retry_after_cap_s: float = 30.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    invalid_retries: int = 2
    budget_usd: float | None = None
    price_per_1k_prompt: float = 0.0
    price_per_1k_completion: float = 0.0
    cache: str | None = None
    state: str | None = None
    eval_sets: list[str] = field(default_factory=list)
    eval_splits: list[str] | None = None
    retry_failed: bool = False
    min_success_rate: float = 0.5
    filters: FilterConfig = field(default_factory=FilterConfig)

    def __post_init__(self) -> None:
        if self.backend not in BACKEND_NAMES:
            raise ValueError(f"unknown backend {self.backend!r}; valid: {', '.join(BACKEND_NAMES)}")
        check_labels_source(self.labels)
        if not 1 <= self.pairs_min <= self.pairs_max:
            raise ValueError(f"need 1 <= pairs_min <= pairs_max, got {self.pairs_min} and {self.pairs_max}")
        if self.backend == "openai" and not self.model:
            raise ValueError("--model is required with --backend openai")
        if self.invalid_retries < 0 or self.concurrency < 1:
            raise ValueError("invalid_retries must be >= 0 and concurrency >= 1")
        check_budget_prices(self.budget_usd, self.price_per_1k_prompt, self.price_per_1k_completion)

    def fingerprint(self) -> dict:
        """Everything that decides the output; a resumed run must match it (see gen_journal)."""
        keep = ("backend", "labels", "permute_labels", "pairs_min", "pairs_max", "seed", "structured",
                "temperature", "max_tokens", "invalid_retries")
        doc = {k: getattr(self, k) for k in keep}
        doc["filters"] = asdict(self.filters)
        doc["eval_sets"] = sorted(self.eval_sets)
        if self.eval_splits is not None:  # only when set, so journals of earlier runs still match
            doc["eval_splits"] = sorted(self.eval_splits)
        if self.backend == "openai":
            doc["model"] = self.model
        return doc
