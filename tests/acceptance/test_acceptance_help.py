"""`paralm --help` and `paralm <command> --help` of every command exit 0 and say something.

Subcommands come from `paralm.cli.COMMANDS` and `LIGHTNING_COMMANDS`, so a new command is covered
without editing this file. The default run calls each command's `--help` in this one process (its
imports are shared, about 10 s in all); the `slow` run starts the installed console script once per
command, as a user types it (about 20 s of CPU each for the heavy ones)."""

from __future__ import annotations

import pytest
from acc_workspace import VENV_BIN, Workspace
from clikit import help_in_process

from paralm.cli import COMMANDS, LIGHTNING_COMMANDS

pytestmark = pytest.mark.timeout(900)  # subprocess fits on a busy 2-core machine
ALL = [(c,) for c in LIGHTNING_COMMANDS] + list(COMMANDS)


def test_paralm_help_lists_every_command(tmp_path):
    result = Workspace(tmp_path).run(["paralm", "--help"], timeout=120)
    assert result.returncode == 0, result.tail()
    for words in ALL:
        assert " ".join(words) in result.output, f"`paralm --help` does not list {' '.join(words)}"


def test_every_subcommand_help_exits_zero_in_process(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    failures = []
    for words in ALL:
        code, out, err = help_in_process(words, capsys)
        text = out + err
        if code != 0 or "usage" not in text.lower():
            failures.append(f"paralm {' '.join(words)} --help: exit {code}\n{text[-1500:]}")
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("words", ALL, ids=lambda w: "-".join(w))
def test_subcommand_help_through_the_console_script(words, tmp_path):
    result = Workspace(tmp_path).run([str(VENV_BIN / "paralm"), *words, "--help"], timeout=300)
    assert result.returncode == 0, result.tail()
    assert "usage" in result.output.lower(), result.tail()
