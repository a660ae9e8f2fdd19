"""JudgeEvalCallback's judge requests follow its settings (max tokens, temperature, JSON mode, retries)."""

from __future__ import annotations

import json

from fake_openai_server import FakeOpenAIServer

from callbacks import JudgeEvalCallback
from paralm.formats.predictions import PredictionRow
from paralm.judge.judge import JudgeSettings


def _rows(n: int = 3) -> list[PredictionRow]:
    return [PredictionRow(key=f"k{i}", question="How does the speaker feel?", type="CP",
                          reference="Happy.", answer=f"Happy, {i}.") for i in range(n)]


def test_callback_sends_its_judge_settings_and_re_asks_unreadable_replies(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "canary-key-not-a-secret")
    replies = iter(["I think it is fine."] + [json.dumps({"rationale": "ok", "rating": 5})] * 10)
    with FakeOpenAIServer(reply_fn=lambda body: next(replies)) as server:
        cb = JudgeEvalCallback(judge_base_url=server.base_url, judge_model="fake-judge", timeout_s=10,
                               max_retries=1, judge=JudgeSettings(max_tokens=64, temperature=0.3,
                                                                  json_mode=False, invalid_retries=1))
        out = tmp_path / "judge_eval" / "step0000002"
        out.mkdir(parents=True)
        summary, judged = cb._judge(_rows(), out)
        bodies = [e["body"] for e in server.chat_requests()]
    assert len(judged) == 3 and all(j.rating == 5 for j in judged)  # the prose reply was asked again
    assert len(bodies) == 4
    assert {b["max_tokens"] for b in bodies} == {64} and {b["temperature"] for b in bodies} == {0.3}
    assert all("response_format" not in b for b in bodies)


def test_callback_defaults_are_the_judge_commands_defaults():
    cb = JudgeEvalCallback()
    assert cb.judge_settings == JudgeSettings() and cb.max_retries == 5
