"""Exit codes of `paralm fit` when it stops on purpose, and the exception that carries them.

A scheduler or wrapper script decides what to do next from the exit code alone (requeue, alert,
give up), so every deliberate stop has its own documented code and a one-line reason on stderr:

| code        | meaning                                                                     |
|-------------|-----------------------------------------------------------------------------|
| 0           | finished                                                                    |
| 3           | asked to resume, but no usable checkpoint (message names files and reasons) |
| 4           | halted on a non-finite loss or gradient; the last good checkpoint is intact |
| 124         | preemption grace time ran out before the step boundary; no new checkpoint   |
| 128 + N     | preempted by signal N (143 = SIGTERM, 138 = SIGUSR1): checkpoint written    |
"""

from __future__ import annotations

import signal

EXIT_RESUME_FAILED = 3
EXIT_NONFINITE_HALT = 4
EXIT_GRACE_EXPIRED = 124


def preempted_exit_code(signum: int) -> int:
    """The shell convention for "ended by signal N": 128 + N (143 for SIGTERM, 138 for SIGUSR1)."""
    return 128 + int(signum)


EXIT_PREEMPTED_SIGTERM = preempted_exit_code(signal.SIGTERM)
EXIT_PREEMPTED_SIGUSR1 = preempted_exit_code(signal.SIGUSR1)


class FaultExit(RuntimeError):
    """A deliberate stop: the CLI prints the message and exits with `exit_code` instead of a traceback."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = int(exit_code)
