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
    cb = JudgeEvalCallback(judge_base_url="http://127.0.0.1:9/v1")
    assert cb.judge_settings == JudgeSettings() and cb.client.max_retries == 5


def test_callback_client_is_a_nested_client_config_in_a_config_file_and_flat_keys_still_work(tmp_path):
    from jsonargparse import ArgumentParser

    from paralm.api.chat_types import ClientConfig

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(JudgeEvalCallback, "callback")
    url = "http://127.0.0.1:8000/v1"
    nested = tmp_path / "nested.yaml"
    nested.write_text(f"callback:\n  client: {{base_url: '{url}', model: judge-a, concurrency: 1, max_retries: 2}}\n")
    flat = tmp_path / "flat.yaml"
    flat.write_text(f"callback: {{judge_base_url: '{url}', judge_model: judge-a, concurrency: 1, max_retries: 2}}\n")
    made = [parser.instantiate_classes(parser.parse_path(str(p))).callback for p in (nested, flat)]
    expected = ClientConfig(base_url=url, model="judge-a", concurrency=1, max_retries=2)
    assert made[0].client == made[1].client == expected
    assert made[0].judge_base_url == url and made[0].client.timeout_s == 60.0  # the one declared default
    assert JudgeEvalCallback(judge_model="judge-a").client is None  # no endpoint: the LLM judge stays off
