"""Ordinary mistakes with the non-Lightning commands end as one line and exit 2, keys in flags are refused
without echo, and `paralm --help` shows the exit-code table (through the installed console script)."""

import subprocess
import sys
from pathlib import Path

import pytest

from paralm.cli_guard import guarded, refuse_secret_argv
from paralm.fault.exits import EXIT_TABLE, FaultExit, UserError

PARALM = str(Path(sys.executable).with_name("paralm"))
KEY = "sk-" + "Zq7" * 8  # key-shaped, fake


def paralm(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PARALM, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def assert_one_line(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr and "usage:" not in proc.stderr, proc.stderr
    return lines[0]


def test_paralm_help_lists_every_exit_code_of_the_table():
    proc = paralm("--help")
    assert proc.returncode == 0
    table = proc.stdout.split("exit codes")[1]
    for code, meaning in EXIT_TABLE:
        assert f"  {code:<6} {meaning}" in table


def test_judge_validate_help_is_found_by_the_command_table(capsys):
    from paralm.cli import main

    with pytest.raises(SystemExit) as done:  # argparse ends --help with SystemExit(0)
        main(["judge-validate", "--help"])
    assert done.value.code == 0 and "--n-resamples" in capsys.readouterr().out


def test_judge_validate_names_a_missing_run_folder(capsys):
    from paralm.eval.validate import main_validate

    assert main_validate(["/nonexistent/run", "--out", "/tmp/never"]) == 2
    line = capsys.readouterr().err.strip()
    assert "/nonexistent/run does not exist" in line and "judged.jsonl" in line and "\n" not in line


@pytest.mark.parametrize("argv, says", [
    (["data", "inspect", "/nonexistent/shards"], "/nonexistent/shards"),
    (["data", "condense", "/nonexistent/shards", "--out", "/tmp/never"], "/nonexistent/shards"),
    (["judge", "--predictions", "/nonexistent/p.jsonl", "--out", "/tmp/never", "--model", "m",
      "--base-url", "http://127.0.0.1:9/v1"], "/nonexistent/p.jsonl"),
    (["export", "/nonexistent/last.ckpt", "--out", "/tmp/never"], "/nonexistent/last.ckpt"),
    (["sweep", "/nonexistent/sweep.yaml"], "/nonexistent/sweep.yaml"),
])
def test_a_wrong_path_is_one_line_naming_it_with_exit_2(argv, says):
    assert says in assert_one_line(paralm(*argv))


def test_a_bad_option_value_is_one_line_without_the_usage_dump():
    line = assert_one_line(paralm("judge", "--predictions", "p", "--out", "o", "--concurrency", "many"))
    assert line.startswith("paralm judge: argument --concurrency: invalid int value") and "--help" in line


@pytest.mark.parametrize("argv", [
    ["judge", "--predictions", "p.jsonl", "--out", "o", "--model", KEY],
    ["judge", "--predictions", "p.jsonl", "--out", "o", "--api-key-env", KEY],
    ["data", "generate", "shards", "--out", "o", "--backend", "openai", f"--model={KEY}"],
    ["data", "generate", "shards", "--out", "o", "--api-key-env", KEY],
])
def test_a_key_in_any_flag_is_refused_with_exit_2_and_never_echoed(argv, tmp_path):
    proc = paralm(*argv, cwd=tmp_path)
    line = assert_one_line(proc)
    assert KEY not in proc.stdout + proc.stderr and ("secret" in line or "NAME of an environment variable" in line)
    assert list(tmp_path.iterdir()) == []  # nothing ran, nothing written


def test_an_env_flag_must_hold_a_variable_name():
    refuse_secret_argv(["--api-key-env", "MY_JUDGE_KEY"], "p")
    with pytest.raises(UserError, match="NAME of an environment variable"):
        refuse_secret_argv(["--api-key-env=not a name"], "p")


def _bug(argv):
    raise KeyError("boom")


def _user_mistake(argv):
    raise UserError("--out: folder is read-only")


def _nothing(argv):
    raise FaultExit("nothing usable: 0 of 3", 5)


def _prints_a_key(argv):
    print(f"server said: invalid key {KEY}")
    return 0


def test_a_bug_shows_its_traceback_and_exits_1(capsys):
    assert guarded("paralm x", _bug, []) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'boom'" in err and "a bug" in err.splitlines()[-1]


def test_user_errors_and_fault_exits_are_one_line_unless_debug(capsys):
    assert guarded("paralm x", _user_mistake, []) == 2
    assert capsys.readouterr().err == "paralm x: --out: folder is read-only\n"
    assert guarded("paralm x", _nothing, []) == 5
    assert capsys.readouterr().err == "paralm x: nothing usable: 0 of 3\n"
    assert guarded("paralm x", _user_mistake, [], debug=True) == 2
    assert "Traceback" in capsys.readouterr().err


def test_everything_a_command_prints_is_masked(capsys):
    assert guarded("paralm x", _prints_a_key, []) == 0
    out = capsys.readouterr().out
    assert KEY not in out and "invalid key ***" in out


def _prints_a_key_in_pieces(argv):
    sys.stderr.write("server said: invalid key " + KEY[:10])
    sys.stderr.write(KEY[10:] + "\n")
    sys.stdout.write("no newline at the end: " + KEY)  # held until the command ends, then masked
    return 0


def test_a_key_written_in_pieces_is_masked_too(capsys):
    assert guarded("paralm x", _prints_a_key_in_pieces, []) == 0
    out, err = capsys.readouterr()
    assert err == "server said: invalid key ***\n" and out == "no newline at the end: ***"


def test_debug_is_a_global_flag_before_or_after_the_command():
    proc = paralm("--debug", "export", "/nonexistent/last.ckpt", "--out", "/tmp/never")
    assert proc.returncode == 2 and "Traceback" in proc.stderr


def test_ablate_given_a_training_config_says_which_keys_are_wrong_as_a_user_error():
    from paralm.runs.ablate import main as ablate_main

    repo = Path(__file__).resolve().parents[2]
    with pytest.raises(UserError, match=r"unknown key\(s\) \['seed_everything', 'trainer'\]"):
        ablate_main([str(repo / "experiments" / "base.yaml")])


def test_an_unknown_command_that_is_a_key_is_not_echoed(capsys):
    from paralm.cli import main

    assert main([KEY]) == 2
    err = capsys.readouterr().err
    assert KEY not in err and "unknown command '***'" in err
