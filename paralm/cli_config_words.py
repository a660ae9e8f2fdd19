"""An options file read and turned into command-line words, checked the way typed flags are.

Why words: the command's own argparse parser then converts and checks every value exactly as it does
for typed flags (types, choices, `--shard-size 256M`, hidden aliases), so a file can never mean
something the same flags would not. Rules and examples: paralm/cli_config_file.py.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from paralm.cli_guard import refuse_secret_argv
from paralm.fault.exits import UserError
from paralm.secret_guard import find_secrets

POSITIONALS_KEY = "args"  # the options-file key for positional arguments
HELP_FLAGS = ("-h", "--help")
Entry = tuple[argparse.Action | None, str, list[str], str]  # (action or None for args:, key, words, file)


class _SpelledOut(argparse.Action):
    """The shared flags are taken out of argv before argparse parses it; argparse itself only meets them
    through an abbreviation (`--conf x`), which would otherwise be swallowed silently."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"write {self.option_strings[0]} in full (an abbreviation of it is not read)")


def normalise(key: Any) -> str:
    """`max-retries`, `--max_retries` and `max_retries` are one key."""
    return str(key).lstrip("-").replace("-", "_")


def load_options_file(path: str, prog: str) -> dict:
    """The file's mapping; malformed YAML or another shape is a UserError naming file (and line)."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{prog}: {path}: not a text file ({err.reason}); an options file is YAML") from err
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        reason = " ".join(str(err.problem or err.context or "").split())
        raise UserError(f"{prog}: {where}: malformed YAML ({reason})") from err
    except yaml.YAMLError as err:
        raise UserError(f"{prog}: {path}: malformed YAML ({' '.join(str(err).split())})") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{prog}: {path}: an options file is a mapping of option names to values "
                        f"(e.g. `max_retries: 3`), not a {type(data).__name__}")
    return data


def long_options(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.Action, str]]:
    """Normalised long option name -> (its action, the option string), hidden aliases included."""
    names = {}
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction, _SpelledOut)):
            continue
        for option in action.option_strings:
            if option.startswith("--"):
                names[normalise(option)] = (action, option)
    return names


def _text(value: Any, where: str) -> str:
    if isinstance(value, (dict, list, tuple)):
        raise UserError(f"{where} takes one value, not a {type(value).__name__}")
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def option_words(action: argparse.Action, option: str, value: Any, where: str) -> list[str]:
    """The words that give `option` this value, as typed on a command line."""
    if value is None:
        return []
    if action.nargs == 0:
        if isinstance(action, argparse._CountAction) and type(value) is int:
            return [option] * value
        if not isinstance(value, bool):
            raise UserError(f"{where} is an on/off flag: write true or false, not {value!r}")
        if isinstance(action, argparse.BooleanOptionalAction) and not option.startswith("--no-"):
            return [option if value else "--no-" + option[2:]]
        return [option] if value else []
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if isinstance(action, argparse._AppendAction) and action.nargs in (None, "?"):
        return [w for v in values for w in (option, _text(v, where))]
    if action.nargs in ("+", "*") or isinstance(action.nargs, int):
        return [option, *(_text(v, where) for v in values)]
    return [f"{option}={_text(value, where)}"]


def file_words(parser: argparse.ArgumentParser, data: dict, path: str, original) -> dict[str, Entry]:
    """One file's entries by what they set (dest, or `args:`); refused: secrets, unknown keys, bad values."""
    prog = parser.prog
    flat = {normalise(k): v for k, v in data.items()}
    secret = find_secrets(flat)
    if secret:
        raise UserError(f"{prog}: refusing a secret value in {path} at {secret[0]} (not shown): put API keys "
                        "in an environment variable and name the variable (e.g. --api-key-env OPENAI_API_KEY)")
    names, entries = long_options(parser), {}
    for key, value in data.items():
        where = f"{prog}: {path}: {key}"
        if normalise(key) == POSITIONALS_KEY and POSITIONALS_KEY not in names:
            values = value if isinstance(value, (list, tuple)) else [] if value is None else [value]
            entries[POSITIONALS_KEY] = (None, key, [_text(v, where) for v in values], path)
            continue
        if normalise(key) not in names:
            close = difflib.get_close_matches(normalise(key), [*names, POSITIONALS_KEY], n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UserError(f"{prog}: unknown key {key!r} in {path} ({hint}keys are the options of `{prog} "
                            f"--help` without dashes, and `{POSITIONALS_KEY}:` for positional arguments)")
        action, option = names[normalise(key)]
        entries["--" + action.dest] = (action, key, option_words(action, option, value, where), path)
    positional = entries.get(POSITIONALS_KEY, (None, "", [], path))[2]
    words = positional + [w for a, _, ws, _ in entries.values() if a is not None for w in ws]
    refuse_secret_argv(words, f"{prog} ({path})")
    with lenient(parser):
        try:
            original(parser, words, None)
        except UserError as err:
            raise UserError(f"{err} (in {path})") from err
    return entries


@contextlib.contextmanager
def lenient(parser: argparse.ArgumentParser) -> Iterator[None]:
    """Nothing required and no defaults: a parse then holds only what its words set."""
    actions = [(a, a.default, a.required) for a in parser._actions]
    groups = [(g, g.required) for g in parser._mutually_exclusive_groups]
    defaults = dict(parser._defaults)
    try:
        parser._defaults.clear()
        for action, _, _ in actions:
            action.default, action.required = argparse.SUPPRESS, False
        for group, _ in groups:
            group.required = False
        yield
    finally:
        parser._defaults.update(defaults)
        for action, default, required in actions:
            action.default, action.required = default, required
        for group, required in groups:
            group.required = required


def given_on_command_line(parser: argparse.ArgumentParser, argv: list[str], original) -> tuple[set[str], bool]:
    """(dests the typed words set, whether they hold positional words): those override the files."""
    if any(word in HELP_FLAGS for word in argv):
        return set(), False
    with lenient(parser):
        ns, _ = original(parser, argv, None)
    given = set(vars(ns))
    return given, any(a.dest in given for a in parser._actions if not a.option_strings)
