"""`paralm judge`: judge a saved predictions file and write per-row results and a summary.

    paralm judge --predictions P.jsonl --out DIR --base-url http://127.0.0.1:8000/v1 --model NAME

writes DIR/judged.jsonl (input order), DIR/summary.json and DIR/summary.md. While it runs, finished
rows are appended to DIR/judged.partial.jsonl; the API cache (DIR/judge_cache.sqlite unless --cache
says otherwise) makes a rerun after a crash send requests only for rows that had not finished.
The API key is read from the environment variable named by --api-key-env, never from a flag.
Also runnable as `python -m paralm.judge.commands`. Never imports torch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from paralm.api.client import ChatClient, ClientConfig
from paralm.eval.jsonl import write_text_atomic
from paralm.eval.predictions import PredictionRow, read_predictions
from paralm.judge.judge import Judge, JudgeSettings
from paralm.judge.results import write_judged
from paralm.judge.rubrics import RUBRICS, get_rubric
from paralm.judge.summary import render_markdown, summarize

BASE_URL_ENV = "PARALM_JUDGE_BASE_URL"
MODEL_ENV = "PARALM_JUDGE_MODEL"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="paralm judge", description="Judge saved predictions with an LLM judge.")
    p.add_argument("--predictions", required=True, help="predictions JSONL (paralm.eval.predictions format)")
    p.add_argument("--out", required=True, help="output folder for judged.jsonl, summary.json, summary.md")
    p.add_argument("--base-url", default=os.environ.get(BASE_URL_ENV),
                   help=f"OpenAI-compatible endpoint root ending in /v1 (default: ${BASE_URL_ENV})")
    p.add_argument("--model", default=os.environ.get(MODEL_ENV), help=f"judge model name (default: ${MODEL_ENV})")
    p.add_argument("--rubric", default="reference_match", choices=sorted(RUBRICS), help="rubric to grade with")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="name of the env var holding the API key")
    p.add_argument("--concurrency", type=int, default=8, help="judge requests in flight at once")
    p.add_argument("--cache", default=None, help="SQLite cache file (default: OUT/judge_cache.sqlite)")
    p.add_argument("--no-cache", action="store_true", help="send every request, keep nothing")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per attempt")
    p.add_argument("--max-retries", type=int, default=5, help="extra attempts for retryable failures")
    p.add_argument("--backoff-base", type=float, default=0.5, help="first backoff ceiling in seconds")
    p.add_argument("--backoff-max", type=float, default=20.0, help="largest backoff ceiling in seconds")
    p.add_argument("--retry-after-cap", type=float, default=30.0, help="longest Retry-After honoured, seconds")
    p.add_argument("--budget-usd", type=float, default=None, help="stop sending once this much is spent")
    p.add_argument("--price-per-1k-prompt", type=float, default=0.0, help="USD per 1k prompt tokens")
    p.add_argument("--price-per-1k-completion", type=float, default=0.0, help="USD per 1k completion tokens")
    p.add_argument("--temperature", type=float, default=0.0, help="judge sampling temperature")
    p.add_argument("--max-tokens", type=int, default=256, help="cap on the judge reply length")
    p.add_argument("--seed", type=int, default=0, help="sampling seed sent to the judge; also the CI seed")
    p.add_argument("--sample-index", type=int, default=0, help="repeated-judgement index (new index: ask again)")
    p.add_argument("--no-json-mode", action="store_true", help="do not send response_format json_object")
    p.add_argument("--min-success-rate", type=float, default=0.0,
                   help="exit with status 1 when fewer rows than this fraction were judged")
    return p


def client_config(args: argparse.Namespace, out: Path) -> ClientConfig:
    """The API client config from parsed flags; missing endpoint or model raise with how to set them."""
    if not args.base_url:
        raise ValueError(f"no judge endpoint: pass --base-url or set ${BASE_URL_ENV}")
    if not args.model:
        raise ValueError(f"no judge model: pass --model or set ${MODEL_ENV}")
    cache = None if args.no_cache else str(args.cache or out / "judge_cache.sqlite")
    return ClientConfig(
        base_url=args.base_url, model=args.model, api_key_env=args.api_key_env, concurrency=args.concurrency,
        timeout_s=args.timeout, max_retries=args.max_retries, backoff_base_s=args.backoff_base,
        backoff_max_s=args.backoff_max, retry_after_cap_s=args.retry_after_cap, cache_path=cache,
        budget_usd=args.budget_usd, price_per_1k_prompt=args.price_per_1k_prompt,
        price_per_1k_completion=args.price_per_1k_completion,
    )


def judge_to_dir(rows: list[PredictionRow], judge: Judge, out: str | Path, seed: int = 0) -> dict:
    """Judge `rows`, write judged.jsonl, summary.json and summary.md into `out`, return the summary.

    Rows are appended to out/judged.partial.jsonl as they finish; it is removed once the complete,
    input-ordered judged.jsonl is in place. Reused by the evaluation callback.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "judged.partial.jsonl"
    judged = judge.judge_many(rows, log_path=partial)
    write_judged(out / "judged.jsonl", judged)
    usage = judge.client.usage.as_dict()
    summary = summarize(judged, judge.rubric, judge.client.config.model, usage, seed=seed)
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_text_atomic(out / "summary.md", render_markdown(summary))
    partial.unlink(missing_ok=True)
    return summary


def run_judge(args: argparse.Namespace) -> dict:
    """Judge the predictions file named by the flags; return the summary."""
    out = Path(args.out)
    rows = read_predictions(args.predictions)
    settings = JudgeSettings(temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed,
                             sample_index=args.sample_index, json_mode=not args.no_json_mode)
    client = ChatClient(client_config(args, out))
    try:
        return judge_to_dir(rows, Judge(client, get_rubric(args.rubric), settings), out, seed=args.seed)
    finally:
        client.close_cache()


def main_judge(argv: list[str] | None = None) -> int:
    """Entry point of `paralm judge`; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        summary = run_judge(args)
    except ValueError as e:
        print(f"paralm judge: error: {e}", file=sys.stderr)
        return 2
    score = "-" if summary["score"] is None else f"{summary['score']:.1f}"
    print(
        f"judged {summary['judged']}/{summary['n']} (success {summary['success_rate'] or 0:.3f}), score {score}, "
        f"{summary['injection']['flagged']} flagged, {summary['usage']['requests_sent']} requests sent -> {args.out}"
    )
    return 0 if (summary["success_rate"] or 0.0) >= args.min_success_rate else 1


if __name__ == "__main__":
    sys.exit(main_judge())
