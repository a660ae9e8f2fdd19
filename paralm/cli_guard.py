"""What `paralm` does around every non-Lightning command: refuse keys in flags, one-line user errors, masking.

Why one place: each command is a small argparse program, and each used to decide on its own whether a
wrong path became a traceback, an argparse usage dump or a line. The console script now runs every one of
them inside `guarded(...)`, so the same mistakes end the same way everywhere (exit-code table in
paralm/fault/exits.py):

- a flag value shaped like an API key, a secret-named flag (`--api-key`), or a key-shaped value where an
  environment variable NAME belongs (`--api-key-env sk-...`) is refused before anything runs, exit 2,
  and the value is never echoed;
- argparse errors, `UserError`s and missing/occupied paths print one line (what, where, how to fix), exit 2;
- `FaultExit` prints its line and exits with its own code (nothing usable, budget, skip rate, ...);
- anything else is a bug: a traceback, exit 1;
- with `--debug` every error shows its traceback;
- everything the command writes to stdout/stderr passes through `mask_secrets`, line by line
  (paralm/secret_guard.py `masked_stdio`, shared with the Lightning commands), so a key written in pieces
  is masked too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator

from paralm.fault.exits import EXIT_BUG, EXIT_OK, EXIT_USER_ERROR, FaultExit, UserError
from paralm.secret_guard import (
    ALLOWED_NAME_SUFFIX,
    KEY_SHAPE,
    SECRET_NAME,
    SecretInConfigError,
    mask_secrets,
    masked_stdio,
)

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Exceptions that, escaping a command, are the user's mistake rather than a bug.
USER_EXCEPTIONS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError,
                   SecretInConfigError)


def _flag_value_pairs(argv: list[str]) -> Iterator[tuple[str | None, str]]:
    """(flag, value) for `--flag value` and `--flag=value`; (None, word) for positional words."""
    flag = None
    for word in argv:
        if word.startswith("--") and "=" in word:
            name, value = word.split("=", 1)
            yield name, value
            flag = None
        elif word.startswith("-") and len(word) > 1 and not word[1:2].isdigit():
            flag = word
        else:
            yield flag, word
            flag = None


def refuse_secret_argv(argv: list[str], prog: str) -> None:
    """Raise UserError (exit 2, value never shown) for a key in any flag of a non-Lightning command."""
    for flag, value in _flag_value_pairs(argv):
        where = flag or "a positional argument"
        name = (flag or "").lstrip("-").replace("-", "_")
        if name.endswith(ALLOWED_NAME_SUFFIX):
            if not ENV_NAME.match(value):
                raise UserError(f"{prog}: {flag} takes the NAME of an environment variable (e.g. OPENAI_API_KEY), "
                                "and the value given is not a variable name (refused, not shown); put the key "
                                "in the environment and name the variable")
            continue
        if KEY_SHAPE.match(value.strip()) or (name and SECRET_NAME.search(name) and value):
            raise UserError(f"{prog}: refusing a secret value in {where} (not shown): put API keys in an "
                            "environment variable and name it with --api-key-env")


def _argparse_error(self: argparse.ArgumentParser, message: str):
    raise UserError(f"{self.prog}: {message} (`{self.prog} --help` lists the options)")


@contextlib.contextmanager
def argparse_errors_raise() -> Iterator[None]:
    """Inside the block an argparse error raises UserError (one line) instead of printing a usage dump."""
    old = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = _argparse_error  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.error = old  # type: ignore[method-assign]


def describe_os_error(err: Exception) -> str:
    """`no such file or directory: PATH (check the path)` instead of `[Errno 2] ...`; other errors as they are."""
    filename, strerror = getattr(err, "filename", None), getattr(err, "strerror", None)
    if filename is None or not strerror:
        return str(err)
    hint = {FileNotFoundError: "check the path", FileExistsError: "choose a new path or remove it",
            PermissionError: "check its permissions"}.get(type(err), "check the path")
    return f"{strerror.lower()}: {filename} ({hint})"


def say(line: str) -> None:
    print(mask_secrets(line), file=sys.stderr, flush=True)


def guarded(prog: str, fn: Callable[[list[str]], int | None], argv: list[str], debug: bool = False) -> int:
    """Run one command's `fn(argv)` under the rules of the module docstring; return its exit code."""
    try:
        return _guarded(prog, fn, argv, debug)
    except BrokenPipeError:  # the reader went away (`paralm data inspect S | head`): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not raise again
        return EXIT_OK


def _guarded(prog: str, fn: Callable[[list[str]], int | None], argv: list[str], debug: bool) -> int:
    with masked_stdio():
        try:
            refuse_secret_argv(argv, prog)
            with argparse_errors_raise():
                return int(fn(argv) or 0)
        except BrokenPipeError:
            raise
        except FaultExit as err:
            if debug:
                traceback.print_exc()
            msg = str(err)
            say(msg if msg.startswith(prog) else f"{prog}: {msg}")
            return err.exit_code
        except USER_EXCEPTIONS as err:
            if debug:
                traceback.print_exc()
            say(f"{prog}: {describe_os_error(err)}")
            return EXIT_USER_ERROR
        except Exception:
            traceback.print_exc()
            say(f"{prog}: unexpected error (a bug; the traceback above says where, please report it)")
            return EXIT_BUG
