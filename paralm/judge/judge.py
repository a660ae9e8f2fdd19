"""The LLM judge: one request per prediction through the shared API client, one verdict per row.

Every row ends judged or unjudged-with-a-reason, never scored 0 by default. A reply without a usable
rating is asked again (bounded by `invalid_retries`, with a stricter format reminder and a new sample
index), and every re-ask is counted on the row and in the summary. Rows are written to an
append log as each finishes (crash safe), and the client's cache makes a rerun after a crash send
nothing for rows that finished: the cache key holds the judge model, the messages (rubric + item),
the sampling settings and `input_hash` (rubric hash + judged fields), so changing any of them asks
again while identical input is answered from the cache. Never imports torch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from paralm.api.client import ApiError, ChatClient, ChatRequest, ChatResult
from paralm.api.reask import with_format_reminder
from paralm.formats.jsonl import JsonlAppender
from paralm.formats.predictions import PredictionRow
from paralm.judge.injection import scan_injection
from paralm.judge.parse import ParseFailure, parse_rating
from paralm.judge.prompt import DEFAULT_MAX_FIELD_CHARS, build_messages, field_cuts, input_hash
from paralm.judge.results import JudgedRow
from paralm.judge.rubrics import Rubric, get_rubric


@dataclass
class JudgeSettings:
    """How each judge request is sampled.

    Args:
        temperature: judge sampling temperature (0 for reproducible ratings).
        max_tokens: cap on the judge's reply length.
        seed: sampling seed sent to the server.
        sample_index: which repeated judgement this is (0, 1, ...); a new index asks the judge again
            instead of reusing the cached verdict, for agreement between repeated judgements.
        json_mode: ask the server for a JSON object reply (response_format json_object); turn off for
            servers that do not support it (the parser also reads JSON in plain text).
        max_field_chars: characters of each judged field sent to the judge (longer text is cut and the
            cut recorded on the row's `truncated`); None sends every field whole.
        invalid_retries: a reply without a usable rating is asked again up to this many times, with a
            stricter format reminder, sample index + k and seed + k (the generator's option of the same name).
    """

    temperature: float = 0.0
    max_tokens: int | None = 256
    seed: int | None = 0
    sample_index: int = 0
    json_mode: bool = True
    max_field_chars: int | None = DEFAULT_MAX_FIELD_CHARS
    invalid_retries: int = 2

    def __post_init__(self) -> None:
        if self.invalid_retries < 0:
            raise ValueError(f"invalid_retries must be >= 0, got {self.invalid_retries}")


class Judge:
    """Judges prediction rows under one rubric with one client.

    Args:
        client: the shared chat client (its model is the judge model).
        rubric: a Rubric or a registered rubric name.
        settings: sampling settings of the judge requests.
    """

    def __init__(self, client: ChatClient, rubric: Rubric | str = "reference_match",
                 settings: JudgeSettings | None = None) -> None:
        self.client = client
        self.rubric = get_rubric(rubric) if isinstance(rubric, str) else rubric
        self.settings = settings or JudgeSettings()

    def request(self, row: PredictionRow, reask: int = 0) -> ChatRequest:
        """The chat request that judges `row`; `reask` k > 0 is the k-th re-ask after an unreadable reply."""
        s = self.settings
        example = f'{{"rationale": "one sentence", "rating": {self.rubric.max_rating}}}'
        return ChatRequest(
            messages=with_format_reminder(build_messages(self.rubric, row, s.max_field_chars), example, reask),
            temperature=s.temperature,
            max_tokens=s.max_tokens,
            response_format={"type": "json_object"} if s.json_mode else None,
            seed=None if s.seed is None else s.seed + reask,
            sample_index=s.sample_index + reask,
            tag=f"judge:{self.rubric.name}:{row.key}",
            input_hash=input_hash(self.rubric, row, s.max_field_chars),
        )

    def verdict(self, row: PredictionRow, req: ChatRequest, outcome: ChatResult | ApiError) -> JudgedRow:
        """Turn one client outcome into a judged or unjudged row."""
        common = dict(
            prediction=row,
            injection_flags=scan_injection(row.answer),
            rubric=self.rubric.name,
            rubric_version=self.rubric.version,
            rubric_sha256=self.rubric.sha256,
            judge_model=self.client.config.model,
            sample_index=req.sample_index,
            input_hash=req.input_hash,
            truncated=field_cuts(self.rubric, row, self.settings.max_field_chars),
        )
        if isinstance(outcome, ApiError):
            return JudgedRow(status="unjudged", reason=f"api:{outcome.reason}", detail=str(outcome),
                             attempts=outcome.attempts, **common)
        common.update(prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.completion_tokens,
                      cached=outcome.cached, attempts=outcome.attempts, reply=outcome.text)
        parsed = parse_rating(outcome.text, self.rubric.min_rating, self.rubric.max_rating)
        if isinstance(parsed, ParseFailure):
            return JudgedRow(status="unjudged", reason=f"parse:{parsed.reason}", detail=parsed.detail, **common)
        return JudgedRow(status="judged", rating=parsed.rating, score=self.rubric.score(parsed.rating),
                         rationale=parsed.rationale, **common)

    async def ajudge_one(self, row: PredictionRow) -> JudgedRow:
        """Judge one row, asking again (up to `invalid_retries` times) while the reply holds no usable rating.

        API failures are not re-asked here (the client already retried them). The returned row counts
        its re-asks and their reasons; tokens and HTTP attempts add up over every ask.
        """
        reasons: list[str] = []
        totals = [0, 0, 0]
        for reask in range(self.settings.invalid_retries + 1):
            req = self.request(row, reask)
            try:
                outcome: ChatResult | ApiError = await self.client.complete(req)
            except ApiError as err:
                outcome = err
            verdict = self.verdict(row, req, outcome)
            totals = [totals[0] + verdict.prompt_tokens, totals[1] + verdict.completion_tokens,
                      totals[2] + verdict.attempts]
            if verdict.judged or not str(verdict.reason).startswith("parse:"):
                break
            if reask < self.settings.invalid_retries:
                reasons.append(str(verdict.reason))
        verdict.prompt_tokens, verdict.completion_tokens, verdict.attempts = totals
        verdict.reasks, verdict.reask_reasons = len(reasons), reasons
        return verdict

    async def ajudge_many(self, rows: Sequence[PredictionRow], log_path: str | Path | None = None,
                          on_row: Callable[[JudgedRow], None] | None = None) -> list[JudgedRow]:
        """Judge all rows (the client bounds concurrency); results in input order.

        With `log_path`, each row is appended to that JSONL (truncated first) the moment it finishes;
        `on_row` is called with each finished row (progress).
        """
        results: list[JudgedRow | None] = [None] * len(rows)
        appender = JsonlAppender(log_path, truncate=True) if log_path is not None else None

        async def run_one(index: int) -> None:
            results[index] = await self.ajudge_one(rows[index])
            if appender is not None:
                appender.append(results[index].to_dict())
            if on_row is not None:
                on_row(results[index])

        try:
            await asyncio.gather(*(run_one(i) for i in range(len(rows))))  # the client bounds concurrency
        finally:
            if appender is not None:
                appender.close()
        return results  # type: ignore[return-value]

    def judge_many(self, rows: Sequence[PredictionRow], log_path: str | Path | None = None,
                   on_row: Callable[[JudgedRow], None] | None = None) -> list[JudgedRow]:
        """Synchronous `ajudge_many`: runs its own event loop (not callable from inside one)."""

        async def run() -> list[JudgedRow]:
            try:
                return await self.ajudge_many(rows, log_path, on_row)
            finally:
                # The HTTP pool belongs to this event loop; close it before the loop ends. The cache
                # stays open so the client can be reused.
                await self.client.close_transport()

        return asyncio.run(run())
