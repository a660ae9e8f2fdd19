"""How each documented command runs here: as written (plus size overrides) or by its listed substitute.

A command runs in the workspace of its doc file, after the earlier commands of its own ```bash block
that do more than parse (the README's data pipeline feeds each stage the previous one's output,
`export` reads `fit`'s checkpoint), whatever their tier. The default test run covers the first command
of each (program, subcommand) pair and the cheap substitutes; every other command runs under `slow`.
"""

from __future__ import annotations

import glob
import re
import shlex
import socket
from dataclasses import dataclass
from pathlib import Path

import yaml
from acc_docs import DocCommand, all_commands, named_words
from acc_inputs import ensure_inputs
from acc_workspace import FIT_STEPS, Result, Workspace

EXCEPTIONS_FILE = Path(__file__).with_name("exceptions.yaml")
TRAINING = {"fit": FIT_STEPS, "validate": ["--trainer.limit_val_batches=1"],
            "test": ["--trainer.limit_test_batches=1"], "predict": ["--trainer.limit_predict_batches=1"]}
PARSE_ONLY = ("--help", "-h", "--print_config", "--check")
PARSE_ONLY_SET = set(PARSE_ONLY)


@dataclass
class Plan:
    command: DocCommand
    argv: list[str]          # what runs (the documented line plus overrides, or the substitute)
    slow: bool
    substitute: bool
    expect_output: str = ""
    expect_exit: int = 0     # the documented exit code (0 unless the table says otherwise)
    after: tuple = ()        # documented command texts that must have run first (their outputs are inputs)
    block: tuple = ()        # (file, first line of its ```bash block) for ordering prerequisites


def load_exceptions(path: Path = EXCEPTIONS_FILE) -> dict[str, dict]:
    entries = yaml.safe_load(path.read_text()) or []
    table = {}
    for entry in entries:
        required = {"command", "why"} if entry.get("as_written") else {"command", "why", "substitute"}
        missing = required - set(entry)
        assert not missing, f"{path}: entry {entry.get('command')!r} lacks {sorted(missing)}"
        assert entry["command"] not in table, f"{path}: {entry['command']!r} listed twice"
        table[" ".join(entry["command"].split())] = entry
    return table


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def expand(text: str) -> list[str]:
    argv = []
    for word in shlex.split(text.replace("{port}", str(free_port()))):
        argv += FIT_STEPS if word == "{fit_steps}" else [word]
    return argv


def size_overrides(argv: list[str]) -> list[str]:
    """The documented argv with only size overrides appended: two steps for `fit`, one batch for the
    other Lightning commands, two steps per trial for sweeps (after the `--` before trial arguments)."""
    if any(flag in argv for flag in PARSE_ONLY):
        return argv
    if argv[0] == "paralm" and len(argv) > 1 and argv[1] in TRAINING:
        return argv + TRAINING[argv[1]]
    if argv[:2] == ["paralm", "sweep"]:
        return argv + ([] if "--" in argv else ["--"]) + FIT_STEPS
    return argv


def subcommand(argv: list[str]) -> tuple[str, ...]:
    words = [w for w in argv[:3] if not w.startswith("-") and "/" not in w and "." not in w]
    return tuple(words[:3] if words[:2] == ["paralm", "data"] else words[:2])


def plans(commands: list[DocCommand] | None = None, exceptions: dict | None = None) -> list[Plan]:
    """One plan per documented command line (references excluded), in document order."""
    commands = all_commands() if commands is None else commands
    exceptions = load_exceptions() if exceptions is None else exceptions
    out, seen = [], set()
    for cmd in commands:
        if named_words(cmd):
            continue
        entry = exceptions.get(cmd.text)
        if entry is not None and not entry.get("as_written"):
            out.append(Plan(cmd, expand(entry["substitute"]), bool(entry.get("slow")), True,
                            entry.get("expect_output", ""), int(entry.get("expect_exit", 0)),
                            tuple(entry.get("after", ()))))
            continue
        key = subcommand(cmd.argv)
        slow = bool(entry["slow"]) if entry is not None and "slow" in entry else key in seen
        out.append(Plan(cmd, size_overrides(cmd.argv), slow, False))
        seen.add(key)
    _assign_blocks(out)
    return out


def _assign_blocks(all_plans: list[Plan]) -> None:
    """Commands of one ```bash block are consecutive lines of one file; inline commands stand alone."""
    last: Plan | None = None
    for plan in all_plans:
        c = plan.command
        joined = (last is not None and not c.inline and not last.command.inline and last.command.file == c.file
                  and 0 < c.line - last.command.line <= 3)
        plan.block = last.block if joined else (c.file, c.line)
        last = plan


def redirect(ws: Workspace, argv: list[str]) -> list[str]:
    """Paths and URLs redirected: an API URL to the test server, a `.../` placeholder path to the newest
    matching file in the workspace (e.g. runs/.../last.ckpt -> the checkpoint the fit above wrote)."""
    out = []
    for word in argv:
        if re.match(r"https?://", word):
            word = ws.server_url
        elif "..." in word:
            pattern = str(ws.path / word.replace("...", "**"))
            found = sorted(glob.glob(pattern, recursive=True), key=lambda p: Path(p).stat().st_mtime)
            word = str(Path(found[-1]).relative_to(ws.path)) if found else word
        out.append(word)
    return out


class Runner:
    """Runs plans once per session (memoised), earlier commands of the same block first."""

    def __init__(self, workspaces):
        self.workspaces = workspaces   # file -> Workspace (made on demand)
        self.results: dict[tuple[str, str], Result] = {}
        self.all = plans()

    def run(self, plan: Plan) -> Result:
        for text in plan.after:
            needed = next(p for p in self.all if p.command.text == text and p.command.file == plan.command.file)
            done = self.run(needed)
            if done.returncode != 0:
                return Result(plan.argv, -1, f"prerequisite {needed.command.id} failed:\n{done.tail()}")
        for earlier in self.all:
            if earlier.command.id == plan.command.id:
                break
            if earlier.block == plan.block and not earlier.substitute and not PARSE_ONLY_SET & set(earlier.argv):
                done = self.run_one(earlier)
                if done.returncode != 0:
                    return Result(plan.argv, -1, f"prerequisite {earlier.command.id} failed:\n{done.tail()}")
        return self.run_one(plan)

    def run_one(self, plan: Plan) -> Result:
        key = (plan.command.file, plan.command.text)  # the same line twice in one doc runs once
        if key not in self.results:
            ws = self.workspaces(plan.command.file)
            ensure_inputs(ws.path, " ".join(plan.argv), ws.made)
            self.results[key] = ws.run(redirect(ws, plan.argv))
        return self.results[key]
