"""`paralm judge`: judge a saved predictions file and write per-row results and a summary.

    paralm judge --predictions P.jsonl --out DIR --base-url http://127.0.0.1:8000/v1 --model NAME

writes DIR/judged.jsonl (input order), DIR/summary.json and DIR/summary.md. While it runs, finished
rows are appended to DIR/judged.partial.jsonl; the API cache (DIR/judge_cache.sqlite unless --cache
says otherwise) makes a rerun after a crash send requests only for rows that had not finished.
The API key is read from the environment variable named by --api-key-env, never from a flag; a key
given as a flag value is refused (exit 2, not echoed). The endpoint is --base-url, else
$PARALM_JUDGE_BASE_URL, else $OPENAI_BASE_URL. Exit status: 0 when at least --min-success-rate of the
rows were judged (default 0.5), 5 (nothing usable) below that and always at 0 judged, 2 for bad input.
Also runnable as `python -m paralm.judge.commands`. Never imports torch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from paralm.api.accounting import budget_stop
from paralm.api.chat_types import client_default
from paralm.api.client import ChatClient, ClientConfig
from paralm.cli_flags import JUDGE_BASE_URL_ENVS, add_client_flags, client_kwargs, judge_base_url
from paralm.cli_guard import refuse_secret_argv
from paralm.fault.exits import EXIT_NOTHING_USABLE, EXIT_USER_ERROR, FaultExit
from paralm.formats.jsonl import write_text_atomic
from paralm.formats.predictions import PredictionRow, read_predictions
from paralm.judge.judge import Judge, JudgeSettings
from paralm.judge.prompt import DEFAULT_MAX_FIELD_CHARS
from paralm.judge.results import write_judged
from paralm.judge.rubrics import RUBRICS, get_rubric
from paralm.judge.summary import render_markdown, summarize
from paralm.progress import progress_bar

BASE_URL_ENV = "PARALM_JUDGE_BASE_URL"
MODEL_ENV = "PARALM_JUDGE_MODEL"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="paralm judge", description="Judge saved predictions with an LLM judge.")
    p.add_argument("--predictions", required=True, help="predictions JSONL (paralm.formats.predictions format)")
    p.add_argument("--out", required=True, help="output folder for judged.jsonl, summary.json, summary.md")
    p.add_argument("--base-url", default=None,
                   help="OpenAI-compatible endpoint root ending in /v1 (default: $" + ", else $".join(JUDGE_BASE_URL_ENVS)
                   + ")")
    p.add_argument("--model", default=os.environ.get(MODEL_ENV), help=f"judge model name (default: ${MODEL_ENV})")
    p.add_argument("--rubric", default="reference_match", choices=sorted(RUBRICS), help="rubric to grade with")
    p.add_argument("--api-key-env", default=client_default("api_key_env"),
                   help="name of the env var holding the API key")
    p.add_argument("--concurrency", type=int, default=client_default("concurrency"),
                   help="judge requests in flight at once")
    p.add_argument("--cache", default=None, help="SQLite cache file (default: OUT/judge_cache.sqlite)")
    p.add_argument("--no-cache", action="store_true", help="send every request, keep nothing")
    add_client_flags(p)
    p.add_argument("--temperature", type=float, default=0.0, help="judge sampling temperature")
    p.add_argument("--max-tokens", type=int, default=256, help="cap on the judge reply length")
    p.add_argument("--seed", type=int, default=0, help="sampling seed sent to the judge; also the CI seed")
    p.add_argument("--sample-index", type=int, default=0, help="repeated-judgement index (new index: ask again)")
    p.add_argument("--no-json-mode", action="store_true", help="do not send response_format json_object")
    p.add_argument("--invalid-retries", type=int, default=2,
                   help="ask again (stricter format reminder, new sample index) after a reply without a usable rating")
    p.add_argument("--max-field-length", type=int, default=DEFAULT_MAX_FIELD_CHARS,
                   help="characters of each field (question, reference, answer) sent to the judge; longer text "
                        "is cut and the cut recorded on the row (0: send whole)")
    p.add_argument("--min-success-rate", type=float, default=0.5,
                   help="exit with status 5 (nothing usable) when fewer rows than this fraction were judged; "
                        "no judged row at all always fails")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def client_config(args: argparse.Namespace, out: Path) -> ClientConfig:
    """The API client config from parsed flags; missing endpoint or model raise with how to set them."""
    base_url = judge_base_url(args.base_url)
    if not base_url:
        raise ValueError(f"no judge endpoint: pass --base-url or set ${BASE_URL_ENV} (or $OPENAI_BASE_URL)")
    if not args.model:
        raise ValueError(f"no judge model: pass --model or set ${MODEL_ENV}")
    cache = None if args.no_cache else str(args.cache or out / "judge_cache.sqlite")
    return ClientConfig(
        base_url=base_url, model=args.model, api_key_env=args.api_key_env, concurrency=args.concurrency,
        cache_path=cache, **client_kwargs(args),
    )


def judge_to_dir(rows: list[PredictionRow], judge: Judge, out: str | Path, seed: int = 0,
                 show_progress: bool = False) -> dict:
    """Judge `rows`, write judged.jsonl, summary.json and summary.md into `out`, return the summary.

    Rows are appended to out/judged.partial.jsonl as they finish; it is removed once the complete,
    input-ordered judged.jsonl is in place. Reused by the evaluation callback. With `show_progress`, rows
    done / total, rate and time left go to stderr (paralm.progress).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "judged.partial.jsonl"
    bar = progress_bar(len(rows), "judge", unit="rows", disable=not show_progress)
    try:
        judged = judge.judge_many(rows, log_path=partial, on_row=None if bar is None else lambda _: bar.update(1))
    finally:
        if bar is not None:
            bar.close()
    write_judged(out / "judged.jsonl", judged)
    usage = judge.client.usage.as_dict()
    summary = summarize(judged, judge.rubric, judge.client.config.model, usage, seed=seed)
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_text_atomic(out / "summary.md", render_markdown(summary))
    partial.unlink(missing_ok=True)
    return summary


def judge_file(predictions: str | Path, out: str | Path, client: ClientConfig, rubric: str = "reference_match",
               settings: JudgeSettings | None = None, show_progress: bool = False) -> dict:
    """Judge a predictions file into `out` with the given client and settings; return the summary.

    The library form of `paralm judge` (the ablation calls it): the caller decides the cache
    (`client.cache_path`; the command's default is OUT/judge_cache.sqlite). The summary's CI seed is the
    judge's sampling seed.
    """
    settings = settings or JudgeSettings()
    rows = read_predictions(predictions)
    chat = ChatClient(client)
    try:
        return judge_to_dir(rows, Judge(chat, get_rubric(rubric), settings), out, seed=settings.seed or 0,
                            show_progress=show_progress)
    finally:
        chat.close_cache()


def run_judge(args: argparse.Namespace) -> dict:
    """Judge the predictions file named by the flags; return the summary."""
    out = Path(args.out)
    settings = JudgeSettings(temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed,
                             sample_index=args.sample_index, json_mode=not args.no_json_mode,
                             max_field_chars=args.max_field_length or None, invalid_retries=args.invalid_retries)
    return judge_file(args.predictions, out, client_config(args, out), args.rubric, settings,
                      show_progress=not args.quiet)


def main_judge(argv: list[str] | None = None) -> int:
    """Entry point of `paralm judge`; returns the process exit status."""
    refuse_secret_argv(list(sys.argv[1:] if argv is None else argv), "paralm judge")
    args = build_parser().parse_args(argv)
    try:
        summary = run_judge(args)
    except ValueError as e:
        print(f"paralm judge: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    score = "-" if summary["score"] is None else f"{summary['score']:.1f}"
    print(
        f"judged {summary['judged']}/{summary['n']} (success {summary['success_rate'] or 0:.3f}), score {score}, "
        f"{summary['injection']['flagged']} flagged, {summary['usage']['requests_sent']} requests sent -> {args.out}"
    )
    stop = budget_stop(summary["usage"] or {}, args.budget_usd)
    if stop is not None:
        print(f"paralm judge: {stop}", file=sys.stderr)
        return stop.exit_code
    check_usable(summary, args.min_success_rate)
    return 0


def check_usable(summary: dict, min_success_rate: float) -> None:
    """Raise FaultExit(EXIT_NOTHING_USABLE) when no row, or fewer than `min_success_rate` of them, was judged."""
    judged, n, rate = summary["judged"], summary["n"], summary["success_rate"] or 0.0
    if judged > 0 and rate >= min_success_rate:
        return
    reasons = ", ".join(f"{k} x{v}" for k, v in sorted((summary.get("unjudged_reasons") or {}).items(),
                                                       key=lambda kv: -kv[1])[:3]) or "no rows in the input"
    what = "no row was judged" if judged == 0 else f"only {judged}/{n} rows judged ({rate:.1%} < --min-success-rate {min_success_rate:g})"
    raise FaultExit(f"paralm judge: nothing usable: {what}; most common reasons: {reasons}; see judged.jsonl "
                    "(`detail` column)", EXIT_NOTHING_USABLE)


if __name__ == "__main__":
    from paralm.cli_guard import guarded

    sys.exit(guarded("paralm judge", main_judge, sys.argv[1:]))
