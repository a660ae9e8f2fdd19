"""Run `paralm <command> --help` in this process (one import of every command for a whole loop)."""

from __future__ import annotations

import sys

from paralm.cli import main


def help_in_process(words: tuple[str, ...], capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `paralm *words --help`; sys.argv is restored afterwards."""
    argv = list(sys.argv)
    try:
        code = main([*words, "--help"])
    except SystemExit as stop:
        code = stop.code or 0
    finally:
        sys.argv[:] = argv
    out = capsys.readouterr()
    return int(code), out.out, out.err
