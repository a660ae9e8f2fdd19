"""How the data commands that produce a report end: one place for their exit codes and messages.

`paralm data pack` (manifest, --from-hf, --from-lhotse) and `paralm data index` each run their work, print
the report's summary, and map the ways it stops to the exit-code table of paralm/fault/exits.py. They
used to spell that out each: a user mistake is `PROG: error: MESSAGE` on stderr with exit 2, a deliberate
stop (`FaultExit`, e.g. nothing usable) is `PROG: MESSAGE` with its own code, and with --strict any
refused input makes the exit status 1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from paralm.fault.exits import EXIT_USER_ERROR, FaultExit, UserError


def report_exit(prog: str, produce: Callable[[], Any], strict: bool,
                user_errors: tuple[type[BaseException], ...] = (UserError,)) -> int:
    """Run `produce()` (returns a report with `summary()` and `skips`), print what it says; the exit code.

    user_errors: the exceptions that are the user's mistake for this command (bad manifest, field map,
    path); each ends as one `PROG: error: ...` line and exit 2."""
    try:
        report = produce()
    except user_errors as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except FaultExit as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.exit_code
    print(report.summary())
    return 1 if strict and report.skips.total else 0
