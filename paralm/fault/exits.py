"""One exit-code table for every `paralm` command, and the exception that carries a code.

A scheduler or wrapper script decides what to do next from the exit code alone (requeue, alert, give
up), so every deliberate stop has its own documented code and a one-line reason on stderr. The same
table is printed by `paralm --help` (`exit_table()`) and docs/reliability.md:

| code    | name                | meaning                                                                     |
|---------|---------------------|-----------------------------------------------------------------------------|
| 0       | EXIT_OK             | finished                                                                    |
| 1       | EXIT_BUG            | an unexpected error (a traceback is printed: please report it)              |
| 2       | EXIT_USER_ERROR     | bad option, missing file or folder, invalid config; also a refused secret   |
| 3       | EXIT_RESUME_FAILED  | asked to resume, but no usable checkpoint (message names files and reasons) |
| 4       | EXIT_NONFINITE_HALT | halted on a non-finite loss or gradient; the last good checkpoint is intact |
| 5       | EXIT_NOTHING_USABLE | nothing usable produced (no row judged, no QA pair generated, ...)          |
| 6       | EXIT_BUDGET         | stopped at a budget (API cost); what was done is kept and resumable         |
| 7       | EXIT_SKIP_RATE      | too many samples skipped (rate over its limit; the skip log names them)     |
| 8       | EXIT_UNFINISHED     | the service failed (no connection, key refused); work kept, rerun resumes   |
| 124     | EXIT_GRACE_EXPIRED  | preemption grace time ran out before the step boundary; no new checkpoint   |
| 128 + N | preempted           | preempted by signal N (143 = SIGTERM, 138 = SIGUSR1): checkpoint written    |
"""

from __future__ import annotations

import signal

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USER_ERROR = 2
EXIT_SECRET_REFUSED = EXIT_USER_ERROR  # a key in a flag or config is a usage error; its own row in the table
EXIT_RESUME_FAILED = 3
EXIT_NONFINITE_HALT = 4
EXIT_NOTHING_USABLE = 5
EXIT_BUDGET = 6
EXIT_SKIP_RATE = 7
EXIT_UNFINISHED = 8
EXIT_GRACE_EXPIRED = 124


def preempted_exit_code(signum: int) -> int:
    """The shell convention for "ended by signal N": 128 + N (143 for SIGTERM, 138 for SIGUSR1)."""
    return 128 + int(signum)


EXIT_PREEMPTED_SIGTERM = preempted_exit_code(signal.SIGTERM)
EXIT_PREEMPTED_SIGUSR1 = preempted_exit_code(signal.SIGUSR1)

# (code, meaning) in the order `paralm --help` and docs/reliability.md show them
EXIT_TABLE: tuple[tuple[str, str], ...] = (
    ("0", "finished"),
    ("1", "unexpected error (a bug: traceback printed)"),
    ("2", "user error: bad option, missing file or folder, invalid config, secret refused"),
    ("3", "resume refused: no usable checkpoint"),
    ("4", "halted on a non-finite loss or gradient"),
    ("5", "nothing usable produced (e.g. no row judged, no QA pair generated)"),
    ("6", "stopped at a budget (work done so far is kept; rerun resumes)"),
    ("7", "skip rate exceeded (too many unreadable samples; see the skip log)"),
    ("8", "unfinished: the API service failed (no connection, key refused); work kept, rerun resumes"),
    ("124", "preemption grace time ran out before a checkpoint"),
    ("128+N", "preempted by signal N, checkpoint written (143 = SIGTERM, 138 = SIGUSR1)"),
)


def exit_table() -> str:
    """The exit-code table as plain text lines (for `paralm --help`)."""
    return "\n".join(f"  {code:<6} {meaning}" for code, meaning in EXIT_TABLE)


class FaultExit(RuntimeError):
    """A deliberate stop: the CLI prints the message and exits with `exit_code` instead of a traceback."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = int(exit_code)


class UserError(FaultExit):
    """An ordinary mistake (wrong path, bad value): one line saying what, where and how to fix it."""

    exit_code = EXIT_USER_ERROR
