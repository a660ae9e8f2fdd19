"""The async OpenAI-compatible chat client shared by QA generation and the judge.

One `ChatClient` per endpoint and model. It bounds concurrency, retries what can succeed on a second
try (honouring Retry-After up to a cap), never sends a request whose answer is already cached or
already in flight, counts tokens and cost from the server's own `usage` (vetted by `usage_check`: missing
or implausible counts are estimated and counted), and stops sending once a budget is spent. Failures come
back as `ApiError` with a reason, never as a made-up default value.

Caching and sampling: every request is cached under (model, messages, sampling parameters,
input_hash, sample_index). A request with temperature > 0 therefore returns the same stored sample
when repeated; ask for more samples with sample_index 1, 2, ...

The API key is read from the environment variable named in the config when the transport is built;
it is never a config value, never stored in the cache, never in repr() or error messages. A server that
echoes a key inside a normal reply (text, model name) is masked here, at the client boundary, before the
reply is cached or returned: the configured key wherever it appears, and anything key-shaped
(`paralm.secrets.mask_secrets`).

Usage:
    async with ChatClient(ClientConfig(base_url=..., model=...)) as client:
        results = await client.complete_many([ChatRequest(messages=[...]), ...])
    # or, from synchronous code: ChatClient(config).run_many(requests)
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from paralm.api.accounting import Ledger, Usage
from paralm.api.cache import CachedReply, ResultCache, cache_key
from paralm.api.chat_types import ChatRequest, ChatResult, ClientConfig
from paralm.api.errors import ApiError
from paralm.api.retry import backoff_delay
from paralm.api.transport import (
    AttemptFailed,
    decode_payload,
    make_openai_client,
    read_result,
    send_once,
)
from paralm.api.usage_check import checked_tokens
from paralm.secret_guard import mask_secrets

__all__ = ["ApiError", "ChatClient", "ChatRequest", "ChatResult", "ClientConfig", "Usage"]

log = logging.getLogger(__name__)

Outcome = ChatResult | ApiError
MIN_KEY_CHARS = 8  # the configured key is searched for in replies only when it is at least this long


@dataclass
class _LoopState:
    """Objects bound to one event loop (asyncio primitives and the HTTP pool cannot cross loops)."""

    loop: asyncio.AbstractEventLoop
    client: object
    semaphore: asyncio.Semaphore
    inflight: dict[str, asyncio.Future] = field(default_factory=dict)


class ChatClient:
    """Async chat-completion client with retries, cache, de-duplication and accounting.

    Args:
        config: endpoint, model, limits, cache and prices.
    """

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._ledger = Ledger(config.price_per_1k_prompt, config.price_per_1k_completion, config.budget_usd)
        self._cache = ResultCache(config.cache_path) if config.cache_path else None
        self._rng = random.Random()
        self._state: _LoopState | None = None

    def __repr__(self) -> str:
        return f"ChatClient(base_url={self.config.base_url!r}, model={self.config.model!r})"

    @property
    def usage(self) -> Usage:
        return self._ledger.usage

    # -- public API ---------------------------------------------------------------------------
    async def complete(self, req: ChatRequest) -> ChatResult:
        """One completion: from the cache, from an identical in-flight request, or sent with retries.

        Raises ApiError when the request ends without a result.
        """
        key = cache_key(req.key_fields(self.config.model))
        hit = self._cache.get(key) if self._cache else None
        if hit is not None:
            self.usage.cache_hits += 1
            return self._masked(ChatResult(hit.text, hit.prompt_tokens, hit.completion_tokens, True, 0,
                                           hit.model, hit.finish_reason))
        state = self._loop_state()
        leader = state.inflight.get(key)
        if leader is not None:
            return await self._follow(leader, req)
        future = state.loop.create_future()
        state.inflight[key] = future
        try:
            result = await self._send_with_retries(state, req)
        except ApiError as err:
            self.usage.errors += 1
            future.set_exception(err)
            future.exception()  # mark retrieved: followers may or may not exist
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            state.inflight.pop(key, None)
        if self._cache is not None:
            self._cache.put(key, CachedReply(result.text, result.prompt_tokens, result.completion_tokens,
                                             result.finish_reason, result.model), tag=req.tag)
        future.set_result(result)
        return result

    async def complete_many(
        self,
        reqs: Sequence[ChatRequest],
        progress: Callable[[int, int], None] | None = None,
        on_result: Callable[[int, Outcome], None] | None = None,
    ) -> list[Outcome]:
        """All requests, at most `concurrency` in flight; results in input order, failures as ApiError.

        `progress(done, total)` is called after each request ends; `on_result(index, outcome)` gets
        each outcome as soon as it is known (e.g. to append it to a results file).
        """
        results: list[Outcome | None] = [None] * len(reqs)
        done = 0

        async def run_one(index: int, req: ChatRequest) -> None:
            nonlocal done
            try:
                outcome: Outcome = await self.complete(req)
            except ApiError as err:
                outcome = err
            results[index] = outcome
            done += 1
            if on_result is not None:
                on_result(index, outcome)
            if progress is not None:
                progress(done, len(reqs))

        await asyncio.gather(*(run_one(i, r) for i, r in enumerate(reqs)))
        return results  # type: ignore[return-value]

    def run_many(
        self, reqs: Sequence[ChatRequest], progress: Callable[[int, int], None] | None = None
    ) -> list[Outcome]:
        """Synchronous `complete_many` (runs its own event loop; not callable from inside one)."""

        async def run() -> list[Outcome]:
            try:
                return await self.complete_many(reqs, progress)
            finally:
                await self.close_transport()

        return asyncio.run(run())

    async def close_transport(self) -> None:
        """Close the HTTP pool of the running event loop (call before that loop ends; the cache stays open)."""
        state, self._state = self._state, None
        if state is not None and state.loop is asyncio.get_running_loop():
            await state.client.close()

    _close_transport = close_transport  # older spelling, kept for callers that use it

    async def aclose(self) -> None:
        """Close the HTTP pool and the cache."""
        await self.close_transport()
        self.close_cache()

    def close_cache(self) -> None:
        """Close the cache file; later calls of this client run uncached."""
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- internals ----------------------------------------------------------------------------
    def _loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        if self._state is None or self._state.loop is not loop:
            api_key = os.environ.get(self.config.api_key_env) or "EMPTY"
            client = make_openai_client(self.config.base_url, api_key, self.config.concurrency,
                                        self.config.timeout_s)
            self._state = _LoopState(loop, client, asyncio.Semaphore(self.config.concurrency))
        return self._state

    async def _follow(self, leader: asyncio.Future, req: ChatRequest) -> ChatResult:
        """Wait for an identical request already in flight instead of sending a second one."""
        self.usage.deduplicated += 1
        await asyncio.wait({leader})
        if leader.cancelled():  # the leader's caller gave up: try on our own
            return await self.complete(req)
        if leader.exception() is not None:
            self.usage.errors += 1
            raise leader.exception()
        return replace(leader.result(), cached=True, attempts=0)

    async def _send_with_retries(self, state: _LoopState, req: ChatRequest) -> ChatResult:
        cfg = self.config
        async with state.semaphore:
            attempt = 0
            while True:
                if not self._ledger.budget_left():
                    self.usage.budget_refused += 1
                    spent = f"spent {self.usage.cost_usd:.6f} of budget_usd={cfg.budget_usd} USD"
                    raise ApiError("budget_exceeded", spent, attempt, req.tag)
                attempt += 1
                self.usage.requests_sent += 1
                self.usage.retries += attempt > 1
                try:
                    return await self._attempt(state, req, attempt)
                except AttemptFailed as fail:
                    self.usage.failed_attempts += 1
                    error = ApiError(fail.reason, self._scrub(fail.detail), attempt, req.tag)
                    if not error.retryable or attempt > cfg.max_retries:
                        raise error from None
                    delay = self._retry_delay(fail, attempt, req)
                    log.info("retrying %s after %s; waiting %.2fs", req.tag or "request", fail.reason, delay)
                await asyncio.sleep(delay)

    def _retry_delay(self, fail: AttemptFailed, attempt: int, req: ChatRequest) -> float:
        cfg = self.config
        if fail.retry_after_s is None:
            return backoff_delay(attempt, cfg.backoff_base_s, cfg.backoff_max_s, self._rng)
        if fail.retry_after_s > cfg.retry_after_cap_s:
            detail = f"server asked to wait {fail.retry_after_s:g}s, over retry_after_cap_s={cfg.retry_after_cap_s:g}"
            raise ApiError("retry_after_too_long", detail, attempt, req.tag)
        return fail.retry_after_s

    async def _attempt(self, state: _LoopState, req: ChatRequest, attempt: int) -> ChatResult:
        body = await send_once(state.client, self.config.model, req, self.config.timeout_s)
        payload = decode_payload(body)
        tokens = checked_tokens(payload, req.messages)
        self._ledger.bill(tokens.prompt, tokens.completion)
        if tokens.problem is not None:
            self._count_usage_problem(tokens.problem, req)
        result = read_result(payload, req, attempt, self.config.model, (tokens.prompt, tokens.completion))
        return self._masked(result)

    def _count_usage_problem(self, problem: str, req: ChatRequest) -> None:
        """Count a reply whose `usage` was missing or implausible (its tokens were estimated)."""
        u = self.usage
        first = u.usage_missing + u.usage_invalid == 0
        if problem == "missing":
            u.usage_missing += 1
        else:
            u.usage_invalid += 1
        if first:
            log.warning("reply %s carried %s usage; billing an estimate from the request and reply size "
                        "(counted as usage_%s)", req.tag or "", problem, problem)

    def _masked(self, result: ChatResult) -> ChatResult:
        """`result` with any echoed key masked in its text, model name and finish reason."""
        text, model = self._scrub(result.text), self._scrub(result.model)
        finish = self._scrub(result.finish_reason) if isinstance(result.finish_reason, str) else result.finish_reason
        if (text, model, finish) == (result.text, result.model, result.finish_reason):
            return result
        return replace(result, text=text, model=model, finish_reason=finish)

    def _scrub(self, text: str) -> str:
        """Remove the API key from text that may echo it (some servers quote the key they refused, some
        echo it in a normal reply): the configured key itself, and anything shaped like a key."""
        key = os.environ.get(self.config.api_key_env) or ""
        if len(key.strip()) >= MIN_KEY_CHARS:  # a short placeholder ("EMPTY", "x") is no secret to hunt
            text = text.replace(key, "***")
        return mask_secrets(text)
