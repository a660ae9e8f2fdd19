"""Dynamic batching for `paralm serve`: concurrent requests share one generate call.

Why: one greedy generate over B prompts costs far less than B calls, and requests arriving together
should not wait for each other's full decoding. The collector takes the first waiting request, then
whatever else arrives within `max_wait_ms` (up to `max_batch`); requests that ask for different answer
caps go into separate calls. Generation runs on one worker thread, off the event loop, so the server keeps
accepting (and queueing) requests while a batch decodes. Left padding, masks and per-row position ids
make each request's greedy answer the token sequence it gets alone (fp32).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field


@dataclass
class Job:
    """One request waiting for its answer: item = (waveform, question, meta)."""

    item: tuple
    max_new_tokens: int
    future: asyncio.Future


@dataclass
class Answer:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length"


@dataclass
class BatchStats:
    """How requests were grouped (served at GET /paralm/stats; the tests count batches with it)."""

    requests: int = 0
    batches: int = 0
    largest: int = 0
    sizes: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, size: int) -> None:
        with self._lock:
            self.requests += size
            self.batches += 1
            self.largest = max(self.largest, size)
            self.sizes[size] += 1

    def as_dict(self) -> dict:
        with self._lock:
            return {"requests": self.requests, "batches": self.batches, "largest_batch": self.largest,
                    "batch_sizes": {str(k): v for k, v in sorted(self.sizes.items())}}


RunBatch = Callable[[list[tuple], int], list[Answer]]


class Batcher:
    """Collects jobs into batches and runs `run_batch(items, max_new_tokens)` on one worker thread."""

    def __init__(self, run_batch: RunBatch, max_batch: int = 8, max_wait_ms: float = 10.0) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError(f"max_batch must be >= 1 and max_wait_ms >= 0, got {max_batch} and {max_wait_ms}")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.stats = BatchStats()
        self._queue: asyncio.Queue[Job] | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paralm-generate")

    def start(self) -> None:
        """Call from the running event loop (the app's startup)."""
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._collect_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, item: tuple, max_new_tokens: int) -> Answer:
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(Job(item, max_new_tokens, future))
        return await future

    async def _collect_forever(self) -> None:
        while True:
            jobs = await self._collect()
            groups: dict[int, list[Job]] = {}
            for job in jobs:
                groups.setdefault(job.max_new_tokens, []).append(job)
            for max_new_tokens, group in groups.items():
                await self._run(group, max_new_tokens)

    async def _collect(self) -> list[Job]:
        loop = asyncio.get_running_loop()
        jobs = [await self._queue.get()]
        deadline = loop.time() + self.max_wait_s
        while len(jobs) < self.max_batch:
            left = deadline - loop.time()
            if left <= 0 and self._queue.empty():
                break
            try:
                jobs.append(await asyncio.wait_for(self._queue.get(), max(left, 0.0)) if left > 0
                            else self._queue.get_nowait())
            except (asyncio.TimeoutError, asyncio.QueueEmpty):
                break
        return jobs

    async def _run(self, jobs: list[Job], max_new_tokens: int) -> None:
        live = [j for j in jobs if not j.future.done()]  # a client that went away needs no answer
        if not live:
            return
        loop = asyncio.get_running_loop()
        try:
            answers = await loop.run_in_executor(self._executor, self.run_batch, [j.item for j in live], max_new_tokens)
        except Exception as err:  # the batch failed: every request in it gets the error, the server lives on
            for job in live:
                if not job.future.done():
                    job.future.set_exception(err)
            return
        self.stats.add(len(live))
        for job, answer in zip(live, answers, strict=True):
            if not job.future.done():
                job.future.set_result(answer)
