"""One flag name per concept across commands (units in the help, not in the name); renamed spellings still
work for one release as hidden aliases; the judge callback never switches itself on from the environment."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from paralm.cli_flags import CLIENT_FLAGS, parse_size
from paralm.creation.generate import build_parser as generate_parser
from paralm.creation.stage import add_stage_args
from paralm.data.pack import build_parser as pack_parser
from paralm.judge.commands import build_parser as judge_parser

PARALM = str(Path(sys.executable).with_name("paralm"))


def option_names(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}


def shown_in_help(parser: argparse.ArgumentParser) -> str:
    with redirect_stdout(io.StringIO()) as out:
        parser.print_help()
    return out.getvalue()


def stage_parser() -> argparse.ArgumentParser:
    return add_stage_args(argparse.ArgumentParser(prog="paralm data vad"))


def test_judge_and_generate_share_every_client_flag_name():
    shared = set(CLIENT_FLAGS)
    for parser in (judge_parser(), generate_parser()):
        assert shared <= option_names(parser)
        text = shown_in_help(parser)
        assert all(f"{name} " in text for name in shared)
        assert "--timeout-s" not in text and "--backoff-base-s" not in text and "--retry-after-cap-s" not in text
        assert "TIMEOUT_S" not in text and "--timeout TIMEOUT" in text  # no unit in the shown names either


@pytest.mark.parametrize("old, new, value", [
    ("--timeout-s", "--timeout", "7.5"),
    ("--backoff-base-s", "--backoff-base", "0.25"),
    ("--backoff-max-s", "--backoff-max", "3"),
    ("--retry-after-cap-s", "--retry-after-cap", "9"),
])
def test_old_client_spellings_are_hidden_aliases_of_the_new_names(old, new, value):
    for parser, base in ((judge_parser(), ["--predictions", "p", "--out", "o"]), (generate_parser(), ["src", "--out", "o"])):
        dest = CLIENT_FLAGS[new][0]
        assert getattr(parser.parse_args(base + [old, value]), dest) == float(value)
        assert getattr(parser.parse_args(base + [new, value]), dest) == float(value)


def test_pack_and_every_stage_take_shard_size_with_a_unit():
    assert pack_parser().parse_args(["--out", "o", "--shard-size", "64M"]).shard_bytes == 64 << 20
    assert stage_parser().parse_args(["src", "--out", "o", "--shard-size", "64M"]).shard_bytes == 64 << 20
    # old spellings: pack --shard-bytes SIZE, stages --shard-mb MiB; both hidden
    assert pack_parser().parse_args(["--out", "o", "--shard-bytes", "1G"]).shard_bytes == 1 << 30
    assert stage_parser().parse_args(["src", "--out", "o", "--shard-mb", "0.5"]).shard_bytes == 1 << 19
    for parser in (pack_parser(), stage_parser()):
        text = shown_in_help(parser)
        assert "--shard-size" in text and "--shard-mb" not in text and "--shard-bytes" not in text


def test_sizes_are_read_with_binary_units_and_bad_ones_refused():
    assert [parse_size(t) for t in ("1000", "500k", "256M", "1G", "2MiB")] == [1000, 500 << 10, 256 << 20, 1 << 30, 2 << 20]
    for bad in ("lots", "0", "-5M"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)


def test_creation_stage_reads_the_new_shard_size_flag_from_the_console_script(tmp_path):
    proc = subprocess.run([PARALM, "data", "condense", str(tmp_path / "none"), "--out", str(tmp_path / "o"),
                           "--shard-mb", "many"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--shard-mb" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_judge_callback_stays_off_with_only_the_environment_set(monkeypatch):
    from callbacks.judge_eval import JudgeEvalCallback

    monkeypatch.setenv("PARALM_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert JudgeEvalCallback().judge_base_url is None  # the environment alone never turns the LLM judge on
