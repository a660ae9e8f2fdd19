"""Helpers shared by the judge tests (no tests here): synthetic predictions and scripted judges.

A scripted judge is a `reply_fn` for the fake OpenAI server. It reads the tagged answer out of the
judge prompt, so each test can decide exactly which rating a correct reply carries and then check
that no other rating (from a faulted or ambiguous reply) ever reached a judged row.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from fake_openai_server import FakeOpenAIServer  # noqa: F401  (re-exported for the judge tests)

from paralm.formats.predictions import PredictionRow, write_predictions

EMOTIONS = ("angry", "happy", "sad", "neutral")
TYPES = ("C", "CP", "DP")


def make_rows(n: int, system: str | None = None) -> list[PredictionRow]:
    """n predictions whose answer names its index ("answer 17 ..."), spread over types and emotions."""
    rows = []
    for i in range(n):
        emotion = EMOTIONS[i % len(EMOTIONS)]
        rows.append(PredictionRow(
            key=f"utt{i:04d}", question=f"Question {i}: how does the speaker feel?", type=TYPES[i % 3],
            reference=f"The speaker sounds {emotion}.", answer=f"answer {i}: the speaker sounds {emotion}.",
            emotion=emotion, system=system,
        ))
    return rows


def write_rows(path: Path, rows: list[PredictionRow]) -> Path:
    write_predictions(path, rows)
    return path


def block(body: dict, name: str) -> str:
    """The tagged `name` block of the judge prompt in a request body."""
    user = body["messages"][-1]["content"]
    match = re.search(rf"<<paralm:{name}>>\n(.*?)\n<</paralm:{name}>>", user, re.S)
    assert match is not None, f"no {name} block in judge prompt"
    return match.group(1)


def answer_index(body: dict) -> int:
    """The row index a judge request is about (from "answer <i>:" in its answer block)."""
    return int(re.match(r"answer (\d+):", block(body, "answer")).group(1))


def expected_rating(i: int) -> int:
    """The rating the scripted judge gives row i on a clean reply."""
    return i % 6


def two_ratings(i: int) -> bool:
    """Rows whose (unfaulted) judge reply states two different ratings."""
    return i % 17 == 5


def scripted_judge(body: dict) -> str:
    """A deterministic judge: JSON verdict with rating i % 6, or two conflicting ratings."""
    i = answer_index(body)
    if two_ratings(i):
        return json.dumps({"rationale": "torn", "rating": 2}) + "\nOn reflection, Rating: 4"
    return json.dumps({"rationale": f"verdict on {i}", "rating": expected_rating(i)})


def judge_args(pred: Path, out: Path, server: FakeOpenAIServer, *extra: str) -> list[str]:
    """`paralm judge` flags for a fast run against the fake server; no re-asks of unreadable replies
    unless `extra` asks for them (these tests count requests; test_real_judge_reask covers re-asks)."""
    return ["--predictions", str(pred), "--out", str(out), "--base-url", server.base_url, "--model", "judge-a",
            "--timeout", "5", "--backoff-base", "0.01", "--backoff-max", "0.05", "--invalid-retries", "0", *extra]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
