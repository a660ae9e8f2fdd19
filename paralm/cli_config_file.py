"""`--config FILE.yaml` for every argparse command: a YAML mapping of the command's own options.

Why here and not in each command: the non-Lightning commands are hand-written argparse programs whose
flag names are settled (hyphenated, hidden aliases for old spellings), and each builds its parser inside
its own `main`. `paralm.cli` runs every one of them inside `options_files(prog)`, which intercepts the
first parse by the parser named `prog`, adds the shared options there (so every `--help` shows them) and
turns the files into the words a user would have typed:

    paralm data inspect --config inspect.yaml --verify      # inspect.yaml: {args: [shards/], json: true}

- keys are the command's long option names without the dashes, hyphens or underscores alike
  (`max_retries: 3` or `max-retries: 3`); `args:` lists the positional arguments, in order;
- `true` sets an on/off flag (`false` leaves it off), a list gives a repeatable or multi-value option
  several values, `null` leaves the option at its default;
- several files apply in order, a later file replacing a key of an earlier one; flags typed on the
  command line win over every file (an option given there ignores the files' value; positional words
  typed there replace `args:`);
- an unknown key, malformed YAML or a value of the wrong kind is one line and exit 2, naming the file
  (and its line for YAML errors); YAML is read with `yaml.safe_load` (no tags); a secret-looking value is
  refused as on the command line (paralm/secret_guard.py, paralm/cli_guard.py);
- `--print-config` prints the effective options as YAML, ready for `--config`, and exits 0.

The five commands whose own `--config` already names another file (`export`, `ask` and `serve`: the
training config of a checkpoint; `sweep`: the trials' configs; `demo`: the ablation file) keep it, and
take the options file as `--options FILE`, which every command also accepts (hidden where `--config`
is the shown name).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from paralm.cli_config_words import (
    HELP_FLAGS,
    POSITIONALS_KEY,
    Entry,
    _SpelledOut,
    file_words,
    given_on_command_line,
    load_options_file,
    normalise,
)
from paralm.fault.exits import EXIT_OK, UserError

CONFIG_FLAG, OPTIONS_FLAG, PRINT_FLAG = "--config", "--options", "--print-config"
FILE_HELP = ("YAML file of this command's options: keys are the option names (`max_retries: 3` or "
             "`max-retries: 3`), `args:` lists the positional arguments; flags on the command line win; "
             "repeatable, a later file wins (README: 'Options files')")
PRINT_HELP = "print the effective options as YAML (usable as an options file) and exit"
_Parse = Any  # the original ArgumentParser.parse_known_args


@contextlib.contextmanager
def options_files(prog: str) -> Iterator[None]:
    """Within the block, the first parse by the parser whose prog is `prog` takes the shared options."""
    original = argparse.ArgumentParser.parse_known_args
    done = []

    def parse_known_args(self, args=None, namespace=None):
        if done or self.prog != prog:
            return original(self, args, namespace)
        done.append(True)
        argv = list(sys.argv[1:] if args is None else args)
        return parse_with_files(self, argv, namespace, original)

    argparse.ArgumentParser.parse_known_args = parse_known_args  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_known_args = original  # type: ignore[method-assign]


def add_shared_flags(parser: argparse.ArgumentParser) -> tuple[str, ...]:
    """Add the options-file flags and `--print-config` (help lines only); return the file flags, shown first."""
    taken = parser._option_string_actions
    flags = tuple(f for f in (CONFIG_FLAG, OPTIONS_FLAG) if f not in taken)
    for i, flag in enumerate(flags):
        parser.add_argument(flag, metavar="FILE", action=_SpelledOut, default=argparse.SUPPRESS,
                            help=FILE_HELP if i == 0 else argparse.SUPPRESS)
    if PRINT_FLAG not in taken:
        parser.add_argument(PRINT_FLAG, nargs=0, action=_SpelledOut, default=argparse.SUPPRESS, help=PRINT_HELP)
    return flags


def split_shared(argv: list[str], flags: tuple[str, ...], prog: str) -> tuple[list[str], bool, list[str]]:
    """(files, print wanted, the other words) from argv; words after `--` are left alone."""
    files, want_print, rest, i = [], False, [], 0
    while i < len(argv):
        word = argv[i]
        name, eq, value = word.partition("=")
        if word == "--":
            rest += argv[i:]
            break
        if name in flags and eq:
            files.append(value)
        elif word in flags:
            if i + 1 >= len(argv):
                raise UserError(f"{prog}: {word} needs a FILE (a YAML mapping of this command's options)")
            files.append(argv[i + 1])
            i += 1
        elif word == PRINT_FLAG:
            want_print = True
        else:
            rest.append(word)
        i += 1
    return files, want_print, rest


def parse_with_files(parser: argparse.ArgumentParser, argv: list[str], namespace, original: _Parse):
    """The command's parse of argv plus the options files' words for what argv does not set itself."""
    prog = parser.prog
    files, want_print, argv = split_shared(argv, add_shared_flags(parser), prog)
    if any(word in HELP_FLAGS for word in argv[: argv.index("--") if "--" in argv else None]):
        return original(parser, argv, namespace)
    merged: dict[str, Entry] = {}  # by what an entry sets: a later file replaces an earlier one's entry
    for path in files:
        merged.update(file_words(parser, load_options_file(path, prog), path, original))
    given, cli_positionals = given_on_command_line(parser, argv, original) if merged else (set(), False)
    positionals: list[str] = []
    options: list[str] = []
    for action, _, words, _ in merged.values():
        if action is None and not cli_positionals:
            positionals = words
        elif action is not None and action.dest not in given:
            options += words
    # the files' options after the typed words (none of them sets the same option), so an option taking
    # several values in a file never swallows a typed positional; before a typed `--`, which ends options
    cut = argv.index("--") if "--" in argv else len(argv)
    ns, extras = original(parser, positionals + argv[:cut] + options + argv[cut:], namespace)
    if want_print:
        import yaml

        print(yaml.safe_dump(effective_options(parser, ns), sort_keys=False, allow_unicode=True), end="")
        raise SystemExit(EXIT_OK)
    return ns, extras


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)  # Path and other parsed types: the text that parses back to them


def _flag_value(action: argparse.Action, value: Any) -> Any:
    """What a key of an options file holds for this parsed value (on/off flags as booleans)."""
    if action.nargs == 0 and not isinstance(action, argparse._CountAction):
        if isinstance(action, argparse.BooleanOptionalAction):
            return bool(value)
        return value == action.const
    return _plain(value)


def effective_options(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> dict[str, Any]:
    """The parsed options as an options-file mapping (shown names only; positionals under `args:`)."""
    out: dict[str, Any] = {}
    seen: set[str] = set()
    positionals: list[Any] = []
    for action in parser._actions:
        if (action.help == argparse.SUPPRESS or isinstance(action, (argparse._HelpAction, _SpelledOut))
                or action.dest in seen or not hasattr(ns, action.dest)):
            continue
        value = getattr(ns, action.dest)
        if not action.option_strings:
            positionals += [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]
            continue
        long = next((s for s in action.option_strings if s.startswith("--")), None)
        if long is not None:
            seen.add(action.dest)
            out[normalise(long)] = _flag_value(action, value)
    if positionals:
        out[POSITIONALS_KEY] = _plain(positionals)
    return out
