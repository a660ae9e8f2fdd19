"""Every command line the user-facing docs show, read from the docs themselves.

Two places hold commands: fenced ```bash blocks (one command per line, `\\` continuations joined,
trailing `# comments` dropped) and inline code spans in prose that start with a program name
(`paralm ...`, `fabric run ...`, `torchrun ...`, `python ...`, `wandb ...`, `make ...`, ...). An inline
span that only names commands (`paralm fit|validate|test`, `paralm data vad | transcribe`, `make demo`)
is a *reference*: it must name commands that exist, but there is nothing to run. Everything else is a
command line that the acceptance suite runs or lists in exceptions.yaml.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ("paralm", "fabric", "torchrun", "python", "wandb", "make", "sbatch", "srun", "pytest")
FENCE = re.compile(r"^```(\w*)\s*$")
INLINE = re.compile(r"`([^`]+)`")
BASH = ("bash", "sh", "shell", "console")


@dataclass(frozen=True)
class DocCommand:
    file: str      # path relative to the repository root
    line: int      # 1-based line where the command starts
    text: str      # whitespace-normalised command line
    inline: bool   # from an inline code span rather than a ```bash block

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.text)


def doc_files(root: Path = ROOT) -> list[Path]:
    """README.md, docs/*.md and sweeps/README.md: the pages a user follows."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md")), root / "sweeps" / "README.md"]


def _strip_comment(line: str) -> str:
    """Drop a trailing `# comment` that starts outside quotes after whitespace (as bash reads it)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].strip()
    return line.strip()


def bash_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of every ```bash / ```sh / ```shell block."""
    blocks, current, lang, start = [], None, "", 0
    for number, line in enumerate(text.splitlines(), 1):
        fence = FENCE.match(line.strip())
        if fence and current is None:
            current, lang, start = [], fence.group(1), number + 1
        elif line.strip().startswith("```") and current is not None:
            if lang in BASH:
                blocks.append((start, current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def block_commands(file: str, start: int, lines: list[str]) -> list[DocCommand]:
    commands, pending, first = [], "", start
    for offset, raw in enumerate(lines):
        if not pending:
            first = start + offset
        stripped = raw.rstrip()
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = _strip_comment(pending + stripped)
        pending = ""
        if text:
            commands.append(DocCommand(file, first, " ".join(text.split()), inline=False))
    return commands


def _without_bash_blocks(text: str) -> str:
    """Everything but the ```bash blocks (blanked, line numbers kept): prose and other code blocks,
    whose inline spans (e.g. `wandb sync ...` in a folder tree) are commands too."""
    out, inside = [], False
    for line in text.splitlines():
        fence = FENCE.match(line.strip())
        if not inside and fence:
            inside = fence.group(1) in BASH
        elif inside and line.strip().startswith("```"):
            inside = False
        elif not line.strip().startswith("```"):
            out.append("" if inside else line)
            continue
        out.append("")
    return "\n".join(out)


def inline_commands(file: str, text: str) -> list[DocCommand]:
    prose = _without_bash_blocks(text)
    found = []
    for match in INLINE.finditer(prose):
        span = " ".join(match.group(1).split())
        if span.split(" ")[0] in PROGRAMS and " " in span:
            line = prose.count("\n", 0, match.start()) + 1
            found.append(DocCommand(file, line, span, inline=True))
    return found


def all_commands(root: Path = ROOT) -> list[DocCommand]:
    commands = []
    for path in doc_files(root):
        rel, text = str(path.relative_to(root)), path.read_text()
        for start, lines in bash_blocks(text):
            commands += block_commands(rel, start, lines)
        commands += inline_commands(rel, text)
    return commands


def command_words() -> set[str]:
    """Every word that names a paralm command (`fit`, `data`, `pack`, `judge-validate`, ...)."""
    from paralm.cli import COMMANDS, LIGHTNING_COMMANDS

    return set(LIGHTNING_COMMANDS) | {w for words in COMMANDS for w in words}


def make_targets(root: Path = ROOT) -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", (root / "Makefile").read_text(), re.M))


REFERENCE_WORDS = {"fabric": {"run"}, "wandb": {"agent", "sweep", "login", "sync"}}


def named_words(cmd: DocCommand) -> list[str] | None:
    """The command words an inline span only names (`paralm data vad | transcribe` -> [data, vad,
    transcribe]), or None when the span carries anything else (options, paths, placeholders)."""
    if not cmd.inline:
        return None
    words = [w for w in re.split(r"[\s|]+", cmd.text)[1:] if w]
    allowed = {"paralm": command_words(), "make": make_targets()}.get(cmd.argv[0]) or REFERENCE_WORDS.get(
        cmd.argv[0], set())
    plain = all(re.fullmatch(r"[a-z][a-z-]*", w) for w in words)
    if not plain:
        return None
    # a plain span is a reference when every word is a known name; unknown names make it a command line
    # (so `paralm frobnicate` in prose is neither run nor listed, and fails)
    return words if all(w in allowed for w in words) else None
