"""`paralm <command> --config FILE.yaml`: an options file gives every argparse command what its flags give.

Run as a user runs them: the installed `paralm` console script in a subprocess (the judge against the
fake OpenAI server), except the loop over every command's `--help`, which calls `paralm.cli.main` in
this process so the heavy imports are paid once.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from clikit import help_in_process
from judgekit import FakeOpenAIServer, judge_args, make_rows, scripted_judge, write_rows
from shardkit import make_corpus

from paralm.cli import COMMANDS, main
from paralm.fault.exits import EXIT_USER_ERROR

ROOT = Path(__file__).resolve().parents[2]
PARALM = shutil.which("paralm", path=str(Path(sys.executable).parent))
SHARDS = "data/demo/shards/general"
EXAMPLE = "docs/examples/inspect_demo.yaml"  # the options file README.md and docs/data.md show
KEY = "sk-" + "a1b2c3d4" * 4  # key-shaped: refused wherever it appears
OWN_CONFIG = {("export",), ("ask",), ("serve",), ("sweep",), ("demo",)}  # --config names another file there


def paralm(*argv: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(cwd), "OPENAI_API_KEY": "local-test",
           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    return subprocess.run([PARALM, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def write_yaml(path: Path, data) -> Path:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def one_error_line(result: subprocess.CompletedProcess, prog: str) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == EXIT_USER_ERROR and len(lines) == 1, result.stderr
    assert lines[0].startswith(prog + ":") and "Traceback" not in result.stderr
    return lines[0]


def test_data_inspect_from_the_documented_options_file_prints_what_the_flags_print():
    by_flags = paralm("data", "inspect", SHARDS, "--json", "--min-duration", "0.5")
    by_file = paralm("data", "inspect", "--config", EXAMPLE)  # docs/data.md, as written
    assert by_flags.returncode == 0 and by_file.returncode == 0, by_file.stderr
    assert json.loads(by_file.stdout) == json.loads(by_flags.stdout)
    assert json.loads(by_file.stdout)["samples"] > 0


def test_the_readme_print_config_line_shows_the_file_with_the_typed_flag_winning():
    result = paralm(*shlex.split(f"data inspect --config {EXAMPLE} --min-duration 1 --print-config"))
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout) == {"json": True, "verify": False, "min_duration": 1.0,
                                             "max_duration": None, "args": [SHARDS]}


def test_data_pack_from_an_options_file_writes_the_same_shards(tmp_path):
    corpus = make_corpus(tmp_path, 4)
    flags = ["--manifest", str(corpus.manifest), "--audio-root", str(corpus.audio_root), "--format", "wav",
             "--shard-size", "64k", "--no-progress"]
    cfg = write_yaml(tmp_path / "pack.yaml", {"manifest": str(corpus.manifest), "audio_root": str(corpus.audio_root),
                                              "format": "wav", "shard_size": "64k", "no_progress": True})
    by_flags = paralm("data", "pack", *flags, "--out", str(tmp_path / "a"))
    by_file = paralm("data", "pack", "--config", str(cfg), "--out", str(tmp_path / "b"))
    assert by_flags.returncode == 0 and by_file.returncode == 0, by_file.stderr
    shards = sorted(p.name for p in (tmp_path / "a").glob("*.tar"))
    assert len(shards) > 1 and shards == sorted(p.name for p in (tmp_path / "b").glob("*.tar"))
    for name in shards:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.slow  # two judge runs against the fake server: about 9 s on a busy 2-core machine
def test_judge_from_an_options_file_judges_like_the_flags(tmp_path):
    pred = write_rows(tmp_path / "p.jsonl", make_rows(6))
    with FakeOpenAIServer(reply_fn=scripted_judge) as server:
        flags = judge_args(pred, tmp_path / "a", server)
        by_flags = paralm("judge", *flags, "--quiet")
        keys = dict(zip([f.lstrip("-") for f in flags[::2]], flags[1::2], strict=True))  # every flag here takes a value
        keys["out"] = str(tmp_path / "b")
        cfg = write_yaml(tmp_path / "judge.yaml", {**keys, "quiet": True})
        by_file = paralm("judge", "--config", str(cfg))
    assert by_flags.returncode == 0 and by_file.returncode == 0, by_file.stderr
    a, b = (json.loads((tmp_path / d / "summary.json").read_text()) for d in "ab")
    assert a["judged"] == b["judged"] == 5 and a["by_type"] == b["by_type"]
    assert [json.loads(ln)["rating"] for ln in (tmp_path / "a" / "judged.jsonl").read_text().splitlines()] == \
        [json.loads(ln)["rating"] for ln in (tmp_path / "b" / "judged.jsonl").read_text().splitlines()]


@pytest.mark.slow  # each `sweep --check` parses every trial through the real CLI: about 25 s on 2 cores
def test_sweep_check_from_an_options_file_checks_the_same_sweep(tmp_path):
    cfg = write_yaml(tmp_path / "sweep.yaml", {"args": ["sweeps/implicit_ratio.yaml"], "check": True, "count": 2})
    by_flags = paralm("sweep", "sweeps/implicit_ratio.yaml", "--check", "--count", "2", timeout=300)
    by_file = paralm("sweep", "--options", str(cfg), timeout=300)
    assert by_flags.returncode == 0 and by_file.returncode == 0, by_file.stderr
    assert by_file.stdout == by_flags.stdout and "implicit_ratio.yaml: valid (grid" in by_file.stdout


def test_command_line_wins_over_files_and_a_later_file_over_an_earlier_one(tmp_path):
    first = write_yaml(tmp_path / "first.yaml", {"args": ["not/there"], "max_duration": 5, "min_duration": 1})
    second = write_yaml(tmp_path / "second.yaml", {"max-duration": 7.5, "verify": True})
    result = paralm("data", "inspect", "--config", str(first), "--config", str(second), "--min-duration", "2",
                    SHARDS, "--print-config")
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert printed == {"json": False, "verify": True, "min_duration": 2.0, "max_duration": 7.5, "args": [SHARDS]}
    # what --print-config prints is itself an options file that gives the same options
    again = paralm("data", "inspect", "--config", str(write_yaml(tmp_path / "printed.yaml", result.stdout)),
                   "--print-config")
    assert yaml.safe_load(again.stdout) == printed


BAD_FILES = {  # id: (file text, words of the one error line)
    "unknown-key": ("base-url: http://127.0.0.1:9/v1\nmax_retry: 3\n",
                    ["unknown key 'max_retry'", "did you mean 'max_retries'"]),
    "malformed": ("model: m\nrubric: [a\nout: o\n", ["judge.yaml:3", "malformed YAML"]),
    "python-tag": ("seed: !!python/object/apply:os.system ['touch hacked']\n", ["judge.yaml:1", "malformed YAML"]),
    "not-a-mapping": ("- predictions: p.jsonl\n", ["judge.yaml", "a mapping of option names"]),
    "flag-not-bool": ("no-cache: 3\n", ["judge.yaml", "no-cache", "true or false"]),
    "bad-int": ("max-retries: many\n", ["--max-retries", "invalid int value", "(in ", "judge.yaml"]),
}
SECRETS = {"named-key": {"api_key": "plain-words-but-named-a-key"}, "key-as-env-name": {"api-key-env": KEY},
           "key-shaped-value": {"model": KEY}}


@pytest.mark.parametrize("case", ["unknown-key", "malformed"])
def test_a_bad_options_file_is_one_line_exit_2_naming_the_file(tmp_path, case):
    text, words = BAD_FILES[case]
    cfg = write_yaml(tmp_path / "judge.yaml", text)
    line = one_error_line(paralm("judge", "--config", str(cfg), "--predictions", "p.jsonl", cwd=tmp_path),
                          "paralm judge")
    assert all(w in line for w in words), line


def test_a_secret_in_an_options_file_is_refused_and_never_shown(tmp_path):
    cfg = write_yaml(tmp_path / "judge.yaml", SECRETS["named-key"])
    result = paralm("judge", "--config", str(cfg), cwd=tmp_path)
    line = one_error_line(result, "paralm judge")
    assert "judge.yaml" in line and "refus" in line and "plain-words" not in result.stdout + result.stderr


def in_process(argv: list[str], capfd) -> tuple[int, list[str], str]:
    """`paralm.cli.main` (the console script's function) in this process: (exit code, stderr lines, stdout)."""
    capfd.readouterr()
    code = main(argv)
    out, err = capfd.readouterr()
    return code, [ln for ln in err.splitlines() if ln.strip()], out


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_every_kind_of_bad_options_file_is_one_line_exit_2_in_process(tmp_path, monkeypatch, capfd, case):
    monkeypatch.chdir(tmp_path)
    text, words = BAD_FILES[case]
    cfg = write_yaml(tmp_path / "judge.yaml", text)
    code, err, _ = in_process(["judge", "--config", str(cfg), "--predictions", "p.jsonl"], capfd)
    assert code == EXIT_USER_ERROR and len(err) == 1 and err[0].startswith("paralm judge:"), err
    assert all(w in err[0] for w in words), err[0]
    assert not (tmp_path / "hacked").exists()


@pytest.mark.parametrize("case", list(SECRETS))
def test_every_kind_of_secret_in_an_options_file_is_refused_in_process(tmp_path, monkeypatch, capfd, case):
    monkeypatch.chdir(tmp_path)
    entry = SECRETS[case]
    code, err, out = in_process(["judge", "--config", str(write_yaml(tmp_path / "judge.yaml", entry))], capfd)
    assert code == EXIT_USER_ERROR and len(err) == 1 and "judge.yaml" in err[0] and "refus" in err[0], err
    assert list(entry.values())[0] not in out + "".join(err)


def test_every_command_help_shows_the_options_file_flag(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    missing = []
    for words in COMMANDS:
        code, out, _ = help_in_process(words, capsys)
        text = " ".join(out.split())
        flag = "--options FILE" if words in OWN_CONFIG else "--config FILE"
        if code != 0 or f"{flag} YAML file of this command's options" not in text or "--print-config" not in text:
            missing.append(" ".join(words))
    assert not missing, f"--help without the options-file line: {missing}"


def test_data_inspect_help_through_the_console_script_shows_the_options_file_line():
    result = paralm("data", "inspect", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "--config FILE YAML file of this command's options" in text and "--print-config" in text


@pytest.mark.slow  # `paralm demo` imports Lightning and torch before it parses: about 20 s
def test_demo_help_through_the_console_script_shows_both_config_files():
    result = paralm("demo", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "--config CONFIG ablation file" in text and "--options FILE YAML file of this command's options" in text
