"""`paralm judge` against a faulty server: every row judged once or unjudged with a reason."""

import json
from collections import Counter, defaultdict

from judgekit import (
    FakeOpenAIServer,
    answer_index,
    expected_rating,
    judge_args,
    make_rows,
    read_json,
    scripted_judge,
    two_ratings,
    write_rows,
)

from paralm.judge.commands import main_judge
from paralm.judge.results import read_judged

N = 200
FAULTS = {"429": 0.08, "500": 0.08, "hang": 0.04, "garbage": 0.10}  # 30 % of attempts


def test_200_rows_with_30_percent_faults_are_each_judged_once_or_listed(tmp_path):
    rows = make_rows(N)
    pred = write_rows(tmp_path / "p.jsonl", rows)
    out = tmp_path / "out"
    server = FakeOpenAIServer(reply_fn=scripted_judge, faults=FAULTS, seed=3, retry_after=0.02, hang_s=3.0)
    with server:  # a 1 s timeout: only hangs time out, even on a busy machine
        status = main_judge(judge_args(pred, out, server, "--concurrency", "8", "--max-retries", "2",
                                       "--timeout", "1.0"))
        log = server.chat_requests()
    assert status == 0
    assert server.reply_errors == []
    judged = read_judged(out)
    summary = read_json(out / "summary.json")

    # every input row comes back exactly once, in input order
    assert [r.item_id for r in judged] == [r.item_id for r in rows]

    # retries the client counted are the server's log
    per_item = defaultdict(list)
    for entry in log:
        per_item[answer_index(entry["body"])].append(entry)
    assert sum(r.attempts for r in judged) == len(log) == summary["usage"]["requests_sent"]
    assert summary["usage"]["retries"] == len(log) - N
    for i, r in enumerate(judged):
        assert r.attempts == len(per_item[i])

    api_reason = {"429": "api:rate_limited", "500": "api:server_error", "hang": "api:timeout"}
    for i, r in enumerate(judged):
        entries = per_item[i]
        clean = [e for e in entries if e["fault"] is None]
        last = entries[-1]["fault"]
        assert len(clean) <= 1 and all(e["fault"] is not None for e in entries[:-1])  # asked until answered
        if last is None and not two_ratings(i):
            # judged from the one unfaulted reply, with the rating that reply carried
            assert r.judged and r.reply == scripted_judge(clean[0]["body"])
            assert r.rating == expected_rating(i) and r.score == 20.0 * expected_rating(i)
        elif last is None:
            assert r.reason == "parse:conflicting_ratings" and r.rating is None and r.score is None
        elif last == "garbage":  # a billed 200 reply with no rating in it: nothing taken, not retried
            assert r.reason == "parse:no_rating" and r.rating is None and r.score is None
        else:  # first try + 2 retries, all failed in transport
            assert len(entries) == 3 and r.reason == api_reason[last] and r.rating is None

    # the faults really happened, and some rows ended in each kind of outcome
    assert Counter(e["fault"] for e in log).keys() >= set(FAULTS)
    reasons = summary["unjudged_reasons"]
    assert reasons["parse:conflicting_ratings"] == sum(two_ratings(i) for i in range(N) if per_item[i][-1]["fault"] is None)
    assert reasons["parse:no_rating"] == sum(per_item[i][-1]["fault"] == "garbage" for i in range(N))
    assert any(k.startswith("api:") for k in reasons)

    # unjudged rows are excluded from the mean, never scored 0
    judged_scores = [r.score for r in judged if r.judged]
    assert summary["judged"] == len(judged_scores) < N
    assert summary["score"] == sum(judged_scores) / len(judged_scores)
    assert summary["success_rate"] == len(judged_scores) / N
    assert {u["item_id"] for u in summary["unjudged_items"]} == {r.item_id for r in judged if not r.judged}
    assert summary["usage"]["prompt_tokens"] == server.billed_tokens()["prompt_tokens"]
    assert not (out / "judged.partial.jsonl").exists()
    assert json.loads((out / "judged.jsonl").read_text().splitlines()[0])["rubric"] == "reference_match"
