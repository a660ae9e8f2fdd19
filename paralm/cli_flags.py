"""Flags that several commands share, defined once so one concept has one name everywhere.

Convention: hyphenated names, units in the help text and never in the name (`--timeout`, not
`--timeout-s`; `--shard-size 256M`, not `--shard-bytes` / `--shard-mb`). A spelling that was renamed is
kept for one release as a hidden alias (`argparse.SUPPRESS`: it works, `--help` does not show it).
`paralm judge` and `paralm data generate` take the API client flags from `add_client_flags`; `paralm data
pack` and every creation stage take `--shard-size` from `add_shard_size`.
"""

from __future__ import annotations

import argparse
import os

from paralm.api.chat_types import client_default

# new name -> (dest, type, help, old spellings kept as hidden aliases for one release)
CLIENT_FLAGS: dict[str, tuple[str, type, str, tuple[str, ...]]] = {
    "--timeout": ("timeout_s", float, "seconds per request attempt", ("--timeout-s",)),
    "--max-retries": ("max_retries", int, "extra attempts for retryable failures (429, 5xx, timeouts)", ()),
    "--backoff-base": ("backoff_base_s", float, "first retry backoff ceiling, seconds (doubles per retry)",
                       ("--backoff-base-s",)),
    "--backoff-max": ("backoff_max_s", float, "largest retry backoff ceiling, seconds", ("--backoff-max-s",)),
    "--retry-after-cap": ("retry_after_cap_s", float, "longest Retry-After honoured, seconds (a longer one "
                          "fails the request at once)", ("--retry-after-cap-s",)),
    "--budget-usd": ("budget_usd", float, "stop sending once this much is spent, USD (needs the prices)", ()),
    "--price-per-1k-prompt": ("price_per_1k_prompt", float, "USD per 1,000 prompt tokens", ()),
    "--price-per-1k-completion": ("price_per_1k_completion", float, "USD per 1,000 completion tokens", ()),
}
CLIENT_DEFAULTS = {dest: client_default(dest) for dest, *_ in CLIENT_FLAGS.values()}  # declared in ClientConfig


def add_flag(parser: argparse.ArgumentParser, name: str, dest: str, type_, default, help_: str,
             aliases: tuple[str, ...] = (), **kwargs) -> None:
    """`name` as shown in --help, plus each old spelling as a hidden alias writing the same `dest`."""
    kwargs.setdefault("metavar", name.lstrip("-").replace("-", "_").upper())  # not the dest's unit suffix
    parser.add_argument(name, dest=dest, type=type_, default=default, help=help_, **kwargs)
    for old in aliases:
        parser.add_argument(old, dest=dest, type=type_, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)


def add_client_flags(parser: argparse.ArgumentParser, defaults: dict | None = None) -> argparse.ArgumentParser:
    """Timeouts, retries, backoff, Retry-After cap, budget and prices of the shared API client."""
    values = {**CLIENT_DEFAULTS, **(defaults or {})}
    for name, (dest, type_, help_, aliases) in CLIENT_FLAGS.items():
        add_flag(parser, name, dest, type_, values[dest], help_, aliases)
    return parser


def client_kwargs(args: argparse.Namespace) -> dict:
    """The ClientConfig keyword arguments the client flags set (dest names are ClientConfig's field names)."""
    return {dest: getattr(args, dest) for dest, *_ in CLIENT_FLAGS.values()}


JUDGE_BASE_URL_ENVS = ("PARALM_JUDGE_BASE_URL", "OPENAI_BASE_URL")


def judge_base_url(flag: str | None, environ: dict | None = None) -> str | None:
    """The judge endpoint: --base-url, else $PARALM_JUDGE_BASE_URL, else $OPENAI_BASE_URL (the openai
    client's own convention), else None."""
    env = os.environ if environ is None else environ
    if flag:
        return flag
    return next((env[name] for name in JUDGE_BASE_URL_ENVS if env.get(name)), None)


def parse_size(text: str) -> int:
    """Bytes from "256M", "1G", "500k" or a plain number of bytes (binary units)."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    low = text.strip().lower().removesuffix("ib").removesuffix("b") or "?"
    scale = units.get(low[-1], 1)
    number = low[:-1] if low[-1] in units else low
    try:
        value = int(float(number) * scale)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 256M, 1G, 1000000)") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return value


def _mib(text: str) -> int:
    """The old `--shard-mb` value (MiB, may be fractional) in bytes."""
    try:
        value = int(float(text) * (1 << 20))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of MiB") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return value


def add_shard_size(parser: argparse.ArgumentParser, default: int) -> argparse.ArgumentParser:
    """`--shard-size SIZE` (dest `shard_bytes`); hidden old spellings `--shard-bytes SIZE` and `--shard-mb MiB`."""
    parser.add_argument("--shard-size", dest="shard_bytes", type=parse_size, default=default, metavar="SIZE",
                        help=f"start a new shard once one reaches this size: bytes, or with a unit k/M/G "
                             f"(e.g. 256M; default {default >> 20}M)")
    parser.add_argument("--shard-bytes", dest="shard_bytes", type=parse_size, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)
    parser.add_argument("--shard-mb", dest="shard_bytes", type=_mib, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser
