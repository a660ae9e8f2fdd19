"""Settings of `paralm data generate`, one dataclass with a line per field (shown by `--help`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from paralm.api.chat_types import ClientConfig
from paralm.creation.generate.filters import FilterConfig
from paralm.creation.generate.inputs import check_labels_source

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
        client: the API client of the openai backend (endpoint, model, key variable, concurrency, timeouts,
            retries, backoff, Retry-After cap, budget, prices, cache; see `ClientConfig`); None for the template
            backend. Its `cache_path` None means <state>/api_cache.sqlite; `concurrency` also bounds the clips
            generated at once.
        structured: send response_format=json_schema (servers that support structured output).
        temperature: sampling temperature of the generator.
        max_tokens: completion length cap per request.
        invalid_retries: new samples asked for after an invalid generation (not JSON, wrong shape, too few pairs).
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
    client: ClientConfig | None = None
    structured: bool = False
    temperature: float = 0.7
    max_tokens: int = 1024
    invalid_retries: int = 2
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
        if self.backend == "openai" and self.client is None:
            raise ValueError("--model is required with --backend openai")
        if self.invalid_retries < 0:
            raise ValueError("invalid_retries must be >= 0")

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
            doc["model"] = self.client.model
        return doc
