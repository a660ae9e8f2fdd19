"""`report_exit`: how `paralm data pack` (manifest and foreign inputs) and `paralm data index` end.

One line per way to stop, with the exit code of paralm/fault/exits.py; the report's summary otherwise,
and --strict turns any refused input into exit status 1."""

from types import SimpleNamespace

import pytest

from paralm.data.command_exit import report_exit
from paralm.fault.exits import EXIT_NOTHING_USABLE, EXIT_USER_ERROR, FaultExit, UserError


def report(skipped: int):
    return SimpleNamespace(summary=lambda: f"packed 3, skipped {skipped}", skips=SimpleNamespace(total=skipped))


def fails(exc: BaseException):
    def produce():
        raise exc
    return produce


@pytest.mark.parametrize("skipped, strict, code", [(0, False, 0), (2, False, 0), (0, True, 0), (2, True, 1)])
def test_the_summary_is_printed_and_strict_fails_only_on_refused_inputs(capsys, skipped, strict, code):
    assert report_exit("paralm data pack", lambda: report(skipped), strict) == code
    out, err = capsys.readouterr()
    assert out == f"packed 3, skipped {skipped}\n" and err == ""


def test_a_user_mistake_is_one_error_line_with_exit_2(capsys):
    assert report_exit("paralm data index", fails(KeyError("no such column")), False, (KeyError,)) == EXIT_USER_ERROR
    assert report_exit("paralm data pack", fails(UserError("bad --map")), True) == EXIT_USER_ERROR
    out, err = capsys.readouterr()
    assert out == "" and err == "paralm data index: error: 'no such column'\nparalm data pack: error: bad --map\n"


def test_a_deliberate_stop_keeps_its_own_code_and_line(capsys):
    stop = FaultExit("nothing packed: corrupt_audio=3", EXIT_NOTHING_USABLE)
    assert report_exit("paralm data pack", fails(stop), True) == EXIT_NOTHING_USABLE
    assert capsys.readouterr().err == "paralm data pack: nothing packed: corrupt_audio=3\n"


def test_other_exceptions_are_not_swallowed():
    with pytest.raises(ZeroDivisionError):
        report_exit("paralm data pack", fails(ZeroDivisionError()), False, (UserError,))
