"""`paralm data generate S --out S2 --backend openai|template`: implicit QA pairs for every clip of S.

The implicit method: an LLM (or the template backend) writes C / CP / DP question-answer pairs from the
transcript and the paralinguistic labels of each clip; the Speech-LLM later trains on audio + question only,
so the labels shape the answers without ever being shown. Steps:

1. read the clips' metadata and build generator inputs (`inputs`), optionally with labels permuted;
2. leave out clips that are evaluation clips (`--eval-sets`, by key; `--eval-splits` picks the splits of
   those folders that count, for a corpus folder that holds train, val and test together);
3. generate concurrently (`backends`), parse, filter (`filters`, text leakage included), and journal
   each clip as it finishes (`journal`, in the `--state` folder beside the API cache);
4. once every clip is finished, write the implicit shard set, `failures.jsonl` and `generate_report.json`
   to `--out` (`output`).

Resuming: run the same command again. Journaled clips send nothing; replies that arrived before a kill
come from the API cache; the output is identical to that of an uninterrupted run, because pairs depend only
on each clip's own replies and samples keep the input order. A finished `--out` is left as it is.
`--retry-failed` asks again for clips journaled as failed, continuing their attempts (new sample index
and seed), so an invalid reply in the cache is never served again.

Exit status (paralm/fault/exits.py): 0; 5 when no pair was generated (nothing is written to `--out`; the
report and failures go to the state folder) or fewer clips than `--min-success-rate` got pairs; 6 at the
budget; 8 when the service failed for some clips (rerun to resume); 2 for bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from paralm.api.accounting import budget_stop
from paralm.api.chat_types import ClientConfig, client_default
from paralm.cli_flags import add_client_flags, client_kwargs
from paralm.cli_guard import refuse_secret_argv
from paralm.creation.generate.backends import make_backend
from paralm.creation.generate.config import BACKEND_NAMES, GenerateConfig
from paralm.creation.generate.filters import FilterConfig
from paralm.creation.generate.inputs import GenInput, input_from_meta, permute_labels
from paralm.creation.generate.journal import Journal, JournalMismatch
from paralm.creation.generate.leakage import EvalSets
from paralm.creation.generate.output import (
    FAILURES_NAME,
    REPORT_NAME,
    failure_rows,
    format_summary,
    summarise,
    write_jsonl,
    write_output,
)
from paralm.creation.generate.prompt import PROMPT_SHA256, PROMPT_VERSION
from paralm.creation.generate.run import run_pending
from paralm.creation.generate.template import TEMPLATE_VERSION
from paralm.fault.exits import EXIT_NOTHING_USABLE, EXIT_UNFINISHED, EXIT_USER_ERROR, FaultExit

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"  # a local vLLM or `transformers serve`


def load_inputs(src: Path, cfg: GenerateConfig) -> list[GenInput]:
    """Generator inputs for every readable clip of `src`, in index order (labels permuted when asked)."""
    from paralm.data.index import ShardIndex
    from paralm.data.reader import iter_samples
    from paralm.data.skips import SkipCounter

    inputs = [input_from_meta(meta, cfg.labels) for _, meta, _ in iter_samples(ShardIndex.load(src), SkipCounter())]
    return permute_labels(inputs, cfg.permute_labels) if cfg.permute_labels is not None else inputs


def provenance(cfg: GenerateConfig) -> dict:
    """What produced the pairs, stamped on every output sample under provenance.generate."""
    rec = {"backend": cfg.backend, "labels": cfg.labels, "permute_labels": cfg.permute_labels,
           "pairs_min": cfg.pairs_min, "pairs_max": cfg.pairs_max, "seed": cfg.seed}
    if cfg.backend == "openai":
        rec.update(model=cfg.client.model, prompt_version=PROMPT_VERSION, prompt_sha256=PROMPT_SHA256,
                   temperature=cfg.temperature, structured=cfg.structured)
    else:
        rec.update(version=TEMPLATE_VERSION)
    return rec


def _check_out(src: Path, out: Path) -> dict | None:
    """The finished report when `out` is already complete; raises if `out` holds something else."""
    if (out / REPORT_NAME).exists():
        return json.loads((out / REPORT_NAME).read_text())
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"--out {out} exists, is not empty and holds no finished generation; choose a new folder")
    if out.resolve() == src.resolve():
        raise ValueError(f"--out {out} must differ from the input {src}")
    return None


def generate(src: str | Path, out: str | Path, cfg: GenerateConfig, quiet: bool = False) -> dict:
    """Run (or resume) generation from shard set `src` into `out`; returns the report.

    The report's `clips.unfinished` is > 0 when some clips could not be finished for a run-level reason
    (then `out` is not written yet and the report lives in the state folder).
    """
    src, out = Path(src), Path(out)
    done = _check_out(src, out)
    if done is not None:
        if not quiet:
            print(f"generate: {out} is already complete; nothing to do")
        return done
    state = Path(cfg.state or f"{out}.state")
    inputs = load_inputs(src, cfg)
    eval_sets = EvalSets.from_dirs(cfg.eval_sets, cfg.filters.leak_threshold, cfg.filters.ngram, cfg.eval_splits)
    leaked = [x.key for x in inputs if eval_sets.leaks_key(x)]
    journal = Journal(state / "journal.jsonl", cfg.fingerprint())
    leaked_set = set(leaked)

    def pending(x: GenInput) -> bool:
        rec = journal.records.get(x.key)
        return x.key not in leaked_set and (rec is None or (cfg.retry_failed and rec["status"] == "failed"))

    todo = [x for x in inputs if pending(x)]
    backend = make_backend(cfg, state)
    unfinished = asyncio.run(run_pending(todo, backend, journal, cfg, eval_sets, quiet))
    keys = {x.key for x in inputs}
    records = {k: r for k, r in journal.records.items() if k in keys}
    prov = provenance(cfg)
    report = summarise(records, unfinished, leaked, len(inputs), backend.usage, prov)
    failures = failure_rows(records, unfinished, leaked)
    state.mkdir(parents=True, exist_ok=True)
    if unfinished or not report["pairs"]["total"]:  # never publish an empty "complete" set
        (state / REPORT_NAME).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        write_jsonl(state / FAILURES_NAME, failures)
    else:
        write_output(src, out, records, failures, report, prov)
    if not quiet:
        print(format_summary(report))
        if unfinished:
            print(f"generate: {len(unfinished)} clip(s) unfinished ({', '.join(sorted(report['failures']))}); "
                  "fix the cause and rerun the same command to resume")
    return report


def build_parser() -> argparse.ArgumentParser:
    d, f = GenerateConfig(), FilterConfig()
    p = argparse.ArgumentParser(prog="paralm data generate", description=__doc__.splitlines()[0])
    p.add_argument("src", help="input shard folder (read only)")
    p.add_argument("--out", required=True, help="output shard folder (written once every clip is finished)")
    p.add_argument("--backend", default=d.backend, choices=BACKEND_NAMES, help="LLM endpoint or templates")
    p.add_argument("--labels", default=d.labels, help="label source shown to the generator: gold | pred:<annotator>")
    p.add_argument("--permute-labels", type=int, default=None, metavar="SEED",
                   help="shuffle label sets across clips with this seed (the ablation's control)")
    p.add_argument("--pairs-min", type=int, default=d.pairs_min, help="fewest pairs for a valid generation")
    p.add_argument("--pairs-max", type=int, default=d.pairs_max, help="most pairs kept per clip")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of pair counts, templates and sampling")
    p.add_argument("--base-url", default=DEFAULT_BASE_URL, help="OpenAI-compatible endpoint root")
    p.add_argument("--model", default="", help="model name at the endpoint")
    p.add_argument("--api-key-env", default=client_default("api_key_env"),
                   help="environment variable holding the API key")
    p.add_argument("--structured", action="store_true", help="ask for json_schema structured output")
    p.add_argument("--temperature", type=float, default=d.temperature, help="sampling temperature")
    p.add_argument("--max-tokens", type=int, default=d.max_tokens, help="completion length cap per request")
    p.add_argument("--concurrency", type=int, default=client_default("concurrency"),
                   help="clips (and requests) in flight")
    add_client_flags(p)
    p.add_argument("--invalid-retries", type=int, default=d.invalid_retries, help="new samples after invalid JSON")
    p.add_argument("--cache", default=None, help="SQLite API cache (default: <state>/api_cache.sqlite)")
    p.add_argument("--state", default=None, help="journal + cache folder of a resumable run (default: <out>.state)")
    p.add_argument("--eval-sets", nargs="*", default=[], metavar="DIR", help="evaluation shard folders to avoid")
    p.add_argument("--eval-splits", nargs="+", default=None, metavar="SPLIT",
                   help="only samples of these splits in --eval-sets are evaluation clips (e.g. val test, for a "
                        "folder holding every split); default: all of them")
    p.add_argument("--retry-failed", action="store_true",
                   help="on resume, ask again for clips journaled as failed (new samples, never the cached reply)")
    p.add_argument("--min-success-rate", type=float, default=d.min_success_rate,
                   help="exit with status 5 when fewer clips than this fraction got pairs (no pair at all: always)")
    p.add_argument("--paraphrase-threshold", type=float, default=f.paraphrase_threshold,
                   help="question content-word Jaccard at which two questions of a clip are paraphrases")
    p.add_argument("--near-duplicate-threshold", type=float, default=f.near_duplicate_threshold,
                   help="question+answer character n-gram Jaccard of near duplicates")
    p.add_argument("--leak-threshold", type=float, default=f.leak_threshold,
                   help="question+answer character n-gram Jaccard with an evaluation pair that counts as a leak")
    p.add_argument("--max-answer-words", type=int, default=f.max_answer_words, help="longest answer kept (words)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return p


def client_from_args(args: argparse.Namespace) -> ClientConfig | None:
    """The openai backend's API client from the flags (None for the template backend, which calls nothing).

    `--cache` None stays None here: the backend puts the cache in the state folder."""
    if args.backend != "openai":
        return None
    if not args.model:
        raise ValueError("--model is required with --backend openai")
    return ClientConfig(base_url=args.base_url, model=args.model, api_key_env=args.api_key_env,
                        concurrency=args.concurrency, cache_path=args.cache, **client_kwargs(args))


def config_from_args(args: argparse.Namespace) -> GenerateConfig:
    filters = FilterConfig(paraphrase_threshold=args.paraphrase_threshold,
                           near_duplicate_threshold=args.near_duplicate_threshold,
                           leak_threshold=args.leak_threshold, max_answer_words=args.max_answer_words)
    names = ("backend", "labels", "permute_labels", "pairs_min", "pairs_max", "seed", "structured", "temperature",
             "max_tokens", "invalid_retries", "state", "eval_sets", "eval_splits", "retry_failed", "min_success_rate")
    return GenerateConfig(**{n: getattr(args, n) for n in names}, client=client_from_args(args), filters=filters)


def check_usable(report: dict, min_success_rate: float, where: Path) -> None:
    """Raise FaultExit(EXIT_NOTHING_USABLE) naming why, when no pair was made or too few clips got pairs."""
    clips, pairs = report["clips"], report["pairs"]["total"]
    eligible = clips["inputs"] - clips["leak_key"]
    rate = clips["with_pairs"] / eligible if eligible else 0.0
    if pairs and rate >= min_success_rate:
        return
    if clips["inputs"] and not eligible:
        why = (f"every one of the {clips['inputs']} clips is in an evaluation set (--eval-sets); if that folder "
               "also holds training clips, name the evaluation splits with --eval-splits (e.g. val test)")
    else:
        top = sorted((report.get("failures") or {}).items(), key=lambda kv: -kv[1])[:3]
        reasons = ", ".join(f"{k} x{v}" for k, v in top) or "none failed; every pair was filtered"
        what = "no QA pair was generated" if not pairs else (
            f"only {clips['with_pairs']}/{eligible} clips got pairs ({rate:.1%} < --min-success-rate {min_success_rate:g})")
        why = f"{what}; failures: {reasons}; see {where / FAILURES_NAME} (--retry-failed asks again)"
    raise FaultExit(f"paralm data generate: nothing usable: {why}", EXIT_NOTHING_USABLE)


def main(argv: list[str]) -> int:
    refuse_secret_argv(argv, "paralm data generate")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as err:
        parser.error(str(err))
    try:
        report = generate(args.src, args.out, cfg, quiet=args.quiet)
    except (JournalMismatch, FileExistsError, FileNotFoundError) as err:
        print(f"paralm data generate: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    stop = budget_stop(report.get("usage_this_run") or {}, cfg.client.budget_usd if cfg.client else None)
    if stop is not None:
        print(f"paralm data generate: {stop}", file=sys.stderr)
        return stop.exit_code
    if report["clips"].get("unfinished"):
        return EXIT_UNFINISHED
    out = Path(args.out)
    check_usable(report, cfg.min_success_rate, out if (out / REPORT_NAME).exists() else Path(cfg.state or f"{out}.state"))
    return 0
