"""Generation backends: one clip in, its QA pairs (or the reason there are none) out.

`openai` asks any OpenAI-compatible endpoint through the shared `ChatClient` (retries, cache, accounting
live there). A reply that is not valid JSON of the right shape is an invalid generation: it is counted
and asked again with the next `sample_index` and sampling seed (so neither the cache nor a seeded server
hands back the same bad answer), up to `invalid_retries` times, then the clip fails with that reason.
`template` writes pairs from templates (`paralm.creation.generate.template`) and needs no server.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from paralm.api.client import ApiError, ChatClient, ChatRequest
from paralm.api.reask import with_format_reminder
from paralm.creation.generate.config import GenerateConfig
from paralm.creation.generate.inputs import GenInput, describe_labels
from paralm.creation.generate.parse import InvalidGeneration, parse_pairs
from paralm.creation.generate.prompt import build_messages, generator_record, response_format
from paralm.creation.generate.template import TEMPLATE_VERSION, TemplateError, template_pairs

# Failures that say something about the run (server down, key refused, money spent), not about the clip:
# they are not journaled, so the next run tries those clips again.
REASK_EXAMPLE = '{"pairs": [{"type": "C", "question": "...", "answer": "..."}, ...]}'
RUN_LEVEL_FAILURES = frozenset({"budget_exceeded", "auth", "connection"})


@dataclass
class Generation:
    """What a backend made of one clip.

    Args:
        pairs: parsed {type, question, answer} pairs, before the filters.
        generator: recorded in each pair's `generator` field.
        dropped: pairs dropped while parsing, by reason (malformed_pair, over_limit).
        invalid: invalid generations (replies without a usable set of pairs), by reason; the last one of a
            failed clip is also its failure.
        failure: why the clip has no pairs ("" on success).
        detail: one line about the failure.
        requests: generation attempts made (cached ones included).
    """

    pairs: list[dict] = field(default_factory=list)
    generator: dict = field(default_factory=dict)
    dropped: dict = field(default_factory=dict)
    invalid: Counter = field(default_factory=Counter)
    failure: str = ""
    detail: str = ""
    requests: int = 0


class Backend(Protocol):
    """Turns a clip into a Generation; `aclose` releases connections."""

    async def generate(self, inp: GenInput, first_attempt: int = 0) -> Generation: ...

    async def aclose(self) -> None: ...


def pairs_wanted(cfg: GenerateConfig, key: str) -> int:
    """How many pairs to ask for this clip: seeded by (seed, key), in [pairs_min, pairs_max]."""
    return random.Random(f"{cfg.seed}:n:{key}").randint(cfg.pairs_min, cfg.pairs_max)


def _base_generator(cfg: GenerateConfig) -> dict:
    return {"labels": cfg.labels, "permute_labels": cfg.permute_labels}


class TemplateBackend:
    """Pairs from templates; a clip without transcript or emotion fails with that reason."""

    def __init__(self, cfg: GenerateConfig, state_dir: Path) -> None:
        self.cfg = cfg

    async def generate(self, inp: GenInput, first_attempt: int = 0) -> Generation:
        gen = Generation(generator={"backend": "template", "version": TEMPLATE_VERSION, "seed": self.cfg.seed,
                                    **_base_generator(self.cfg)})
        try:
            gen.pairs = template_pairs(inp, self.cfg.seed, self.cfg.pairs_min, self.cfg.pairs_max)
        except TemplateError as err:
            gen.failure, gen.detail = err.reason, str(err)
        return gen

    async def aclose(self) -> None:
        return None

    @property
    def usage(self) -> dict:
        return {}


class OpenAIBackend:
    """Pairs from an LLM behind an OpenAI-compatible endpoint, via the shared cached client."""

    def __init__(self, cfg: GenerateConfig, state_dir: Path) -> None:
        self.cfg = cfg
        cache = cfg.client.cache_path or str(state_dir / "api_cache.sqlite")
        self.client = ChatClient(replace(cfg.client, cache_path=cache))

    def request(self, inp: GenInput, attempt: int) -> ChatRequest:
        n = pairs_wanted(self.cfg, inp.key)
        speech = "\n".join(inp.timed_lines) if inp.timed_lines else inp.transcript
        messages = build_messages(speech, describe_labels(inp.labels, inp.label_span), n, timed=bool(inp.timed_lines))
        messages = with_format_reminder(messages, REASK_EXAMPLE, attempt)  # re-asks: the judge's stricter reminder
        return ChatRequest(messages=messages, temperature=self.cfg.temperature, max_tokens=self.cfg.max_tokens,
                           response_format=response_format() if self.cfg.structured else None,
                           seed=self.cfg.seed + attempt, sample_index=attempt, tag=inp.key,
                           input_hash=inp.input_hash)

    def _generator(self, req: ChatRequest, model: str) -> dict:
        return {"backend": "openai", "model": self.cfg.client.model, "served_by": model, **generator_record(),
                "temperature": req.temperature, "max_tokens": req.max_tokens, "seed": req.seed,
                "sample_index": req.sample_index, "structured": self.cfg.structured, **_base_generator(self.cfg)}

    async def generate(self, inp: GenInput, first_attempt: int = 0) -> Generation:
        """Ask up to invalid_retries + 1 times, with sample indices from `first_attempt` on (a retry of a
        failed clip starts after the attempts already made, so the cache never serves their replies)."""
        gen = Generation()
        if not inp.transcript or not inp.emotion:
            gen.failure = "no_transcript" if not inp.transcript else "no_labels"
            gen.detail = f"{inp.key}: nothing to generate from ({gen.failure})"
            return gen
        for attempt in range(first_attempt, first_attempt + self.cfg.invalid_retries + 1):
            req = self.request(inp, attempt)
            gen.requests += 1
            try:
                result = await self.client.complete(req)
            except ApiError as err:
                gen.failure, gen.detail = err.reason, str(err)
                return gen
            try:
                parsed = parse_pairs(result.text, self.cfg.pairs_min, self.cfg.pairs_max)
            except InvalidGeneration as err:
                gen.invalid[err.reason] += 1
                gen.failure, gen.detail = err.reason, str(err)
                continue
            gen.pairs, gen.dropped = parsed.pairs, parsed.dropped
            gen.generator = self._generator(req, result.model)
            gen.failure, gen.detail = "", ""
            return gen
        return gen

    async def aclose(self) -> None:
        await self.client.aclose()

    @property
    def usage(self) -> dict:
        return self.client.usage.as_dict()


BACKENDS: dict[str, type] = {"openai": OpenAIBackend, "template": TemplateBackend}


def make_backend(cfg: GenerateConfig, state_dir: Path) -> Backend:
    if cfg.backend not in BACKENDS:
        raise ValueError(f"unknown backend {cfg.backend!r}; valid: {', '.join(BACKENDS)}")
    return BACKENDS[cfg.backend](cfg, state_dir)
