"""`paralm eval --endpoint URL --model NAME --shards TEST_SHARDS --out DIR`: any OpenAI-compatible audio
chat endpoint (`paralm serve`, an API speech model) on the project's test items, scored like our own models.

    paralm eval --endpoint http://127.0.0.1:8000/v1 --model export --shards data/test --out runs/eval_served
    paralm eval --endpoint https://api.openai.com/v1 --model gpt-4o-audio-preview --api-key-env OPENAI_API_KEY \\
        --shards data/test --out runs/eval_api --compare runs/eval_served/predictions.jsonl

Sends every item of --split (its audio and question; the explicit metadata block with --metadata-source)
through the shared API client (concurrency, retries, SQLite cache in OUT, budget, key from the environment
only), writes OUT/predictions.jsonl (the predictions format, ready for `paralm judge`), OUT/scores.json
(deterministic scorers), OUT/eval_summary.json (requests sent, cache hits, failures, skips), with
--judge-model the judge's results in OUT/judge/, and with --compare OTHER.jsonl a paired bootstrap CI of
the per-item difference (token F1, label correctness) in OUT/compare.json.
A rerun answers from the cache and sends no request. Exit 5 when no item got an answer, 6 at the budget.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from paralm.api.accounting import budget_stop
from paralm.api.client import ApiError, ChatClient, ClientConfig
from paralm.cli_flags import add_client_flags, client_kwargs
from paralm.cli_guard import refuse_secret_argv
from paralm.eval.endpoint_items import item_request, prediction_row, read_items
from paralm.fault.exits import EXIT_NOTHING_USABLE, FaultExit, UserError
from paralm.formats.jsonl import write_text_atomic
from paralm.formats.predictions import write_predictions


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="paralm eval", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--endpoint", required=True, help="endpoint root ending in /v1, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--model", required=True, help="model name the endpoint serves")
    p.add_argument("--shards", required=True, help="shard folder with its index (paralm data pack)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--split", default="test", help="split of the shards to evaluate")
    p.add_argument("--metadata-source", default="none", help="none | gold | pred:<annotator>: explicit block before the question")
    p.add_argument("--max-tokens", type=int, default=64, help="answer length cap sent with each request")
    p.add_argument("--sample-rate", type=int, default=16000, help="rate the audio is sent at (the model's rate)")
    p.add_argument("--max-duration", type=float, default=30.0, help="longer clips are skipped and counted")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="env var holding the endpoint's key")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    p.add_argument("--cache", default=None, help="SQLite cache (default: OUT/eval_cache.sqlite)")
    p.add_argument("--system", default=None, help="system name in the predictions (default: --model)")
    p.add_argument("--judge-model", default=None, help="judge the answers with this model (`paralm judge`)")
    p.add_argument("--judge-base-url", default=None, help="judge endpoint (default: $PARALM_JUDGE_BASE_URL, $OPENAI_BASE_URL)")
    p.add_argument("--judge-api-key-env", default="OPENAI_API_KEY", help="env var holding the judge's key")
    p.add_argument("--compare", default=None, help="predictions.jsonl of another system: paired bootstrap CIs")
    add_client_flags(p)
    return p


def run_eval(args: argparse.Namespace) -> dict:
    from paralm.data.prompts import parse_metadata_source

    try:
        parse_metadata_source(args.metadata_source)
    except ValueError as err:
        raise UserError(f"--metadata-source: {err}") from None
    if not Path(args.shards).is_dir():
        raise UserError(f"--shards {args.shards}: no such shard folder")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    items, skipped = read_items(args.shards, args.split, args.sample_rate, args.max_duration)
    if not items:
        raise FaultExit(f"no usable {args.split} items in {args.shards} (skipped: {skipped or 'none'})", EXIT_NOTHING_USABLE)
    try:
        config = ClientConfig(base_url=args.endpoint, model=args.model, api_key_env=args.api_key_env,
                              concurrency=args.concurrency, cache_path=args.cache or str(out / "eval_cache.sqlite"),
                              **client_kwargs(args))
    except ValueError as err:
        raise UserError(str(err)) from None
    client = ChatClient(config)
    try:
        outcomes = client.run_many([item_request(it, args.metadata_source, args.max_tokens) for it in items])
    finally:
        client.close_cache()
    system = args.system or args.model
    rows = [prediction_row(it, o.text, system) for it, o in zip(items, outcomes, strict=True) if not isinstance(o, ApiError)]
    failures = [{"key": it.key, "qa_index": it.qa_index, "reason": o.reason, "detail": str(o)}
                for it, o in zip(items, outcomes, strict=True) if isinstance(o, ApiError)]
    write_predictions(out / "predictions.jsonl", rows)
    summary = {"endpoint": args.endpoint, "model": args.model, "split": args.split, "items": len(items),
               "answered": len(rows), "failed": len(failures), "failures": failures[:20], "skipped": skipped,
               "metadata_source": args.metadata_source, "usage": client.usage.as_dict()}
    write_text_atomic(out / "eval_summary.json", json.dumps(summary, indent=2) + "\n")
    stop = budget_stop(client.usage, config.budget_usd)
    if stop is not None:
        raise stop
    if not rows:
        raise FaultExit(f"no item got an answer from {args.endpoint} ({len(failures)} failed; first: "
                        f"{failures[0]['detail'] if failures else '-'})", EXIT_NOTHING_USABLE)
    return {"summary": summary, "rows": rows}


def score_and_compare(args: argparse.Namespace, rows: list) -> dict:
    from paralm.eval.endpoint_compare import compare_predictions, judge_rows
    from paralm.eval.scorers import score_predictions

    out = Path(args.out)
    scores = score_predictions(rows)
    write_text_atomic(out / "scores.json", json.dumps(scores, indent=2) + "\n")
    if args.judge_model:
        judge_rows(args, rows, out / "judge")
    if args.compare:
        comparison = compare_predictions(rows, args.compare)
        write_text_atomic(out / "compare.json", json.dumps(comparison, indent=2) + "\n")
    return scores


def main(argv: list[str]) -> int:
    refuse_secret_argv(list(argv), "paralm eval")
    args = build_parser().parse_args(argv)
    result = run_eval(args)
    scores = score_and_compare(args, result["rows"])
    s = result["summary"]
    f1 = {t: v["token_f1"] for t, v in scores["by_type"].items() if v["n"]}
    print(f"paralm eval: {s['answered']}/{s['items']} answered by {args.model} ({s['usage'].get('requests_sent', 0)} "
          f"requests sent, {s['usage'].get('cache_hits', 0)} from cache; {s['failed']} failed); token F1 {f1} -> {args.out}",
          file=sys.stderr)
    return 0
