"""Every command line in README.md, docs/*.md and sweeps/README.md runs as written, or its listed
substitute does (tests/acceptance/exceptions.yaml). Commands come from the docs themselves, so an
edited doc is tested without editing this file."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
from acc_docs import all_commands, command_words, make_targets, named_words
from acc_runner import EXCEPTIONS_FILE, Runner, load_exceptions, plans
from acc_workspace import VENV_BIN, make_workspace

PLANS = plans()
# Programs that can run here as written; every other one (GPU launchers, SLURM, W&B server, make
# targets that run this suite or the demo, benchmarks) needs an entry in exceptions.yaml.
RUNS_HERE = ("paralm",)
PLACEHOLDER = re.compile(r"<[^>]*>|\[[^\]]*\]|\$\w+|(?<![\w/.])(N|X\.yaml)(?![\w/])|(?<!/)\.\.\.(?!/)")


def judge_or_generator_reply(body: dict) -> str:
    """The test server answers generation prompts with valid QA pairs and judge prompts with a rating."""
    from genkit import scripted_reply

    try:
        return scripted_reply(body)
    except (AttributeError, ValueError, KeyError):
        return json.dumps({"rationale": "close to the reference", "rating": 4})


@pytest.fixture(scope="module")
def server():
    from fake_openai_server import FakeOpenAIServer

    with FakeOpenAIServer(reply_fn=judge_or_generator_reply) as srv:
        yield srv


@pytest.fixture(scope="module")
def runner(tmp_path_factory, server):
    made = {}

    def workspace(doc_file: str):
        if doc_file not in made:
            ws = make_workspace(tmp_path_factory.mktemp(doc_file.replace("/", "_").replace(".", "_")))
            ws.server_url = server.base_url
            made[doc_file] = ws
        return made[doc_file]

    return Runner(workspace)


def test_every_documented_command_is_run_or_listed():
    """A command that cannot run here as written (placeholders, GPUs, servers, SLURM) must be listed."""
    exceptions = load_exceptions()
    unlisted = []
    for cmd in all_commands():
        if named_words(cmd) or cmd.text in exceptions:
            continue
        if cmd.argv[0] not in RUNS_HERE or PLACEHOLDER.search(cmd.text.replace("runs/.../", "runs/")):
            unlisted.append(f"{cmd.id}: {cmd.text}")
    assert not unlisted, (f"documented commands that cannot run as written and are not in {EXCEPTIONS_FILE.name} "
                          "(add command, substitute, why):\n" + "\n".join(unlisted))


def test_every_listed_exception_is_still_documented():
    documented = {c.text for c in all_commands()}
    stale = [text for text in load_exceptions() if text not in documented]
    assert not stale, f"{EXCEPTIONS_FILE.name} lists commands no doc shows any more: {stale}"


def test_commands_named_in_prose_exist():
    """`paralm data vad | transcribe` or `make test-all` in prose name real commands and targets."""
    words, targets = command_words(), make_targets()
    path = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    for cmd in all_commands():
        named = named_words(cmd)
        if named and cmd.argv[0] == "paralm":
            assert set(named) <= words, f"{cmd.id}: {cmd.text}"
        elif named and cmd.argv[0] == "make":
            assert set(named) <= targets, f"{cmd.id}: {cmd.text}"
        elif named:
            assert shutil.which(cmd.argv[0], path=path), f"{cmd.id}: {cmd.argv[0]} is not installed"


def test_extraction_finds_the_commands_a_user_types():
    """The extractor sees fenced blocks (continuations joined, comments dropped) and inline spans."""
    texts = {c.text for c in all_commands()}
    assert "paralm fit --config experiments/debug_cpu.yaml" in texts
    assert any(t.startswith("paralm data annotate shards/asr") and t.endswith("--windows") for t in texts)
    assert any(t.startswith("torchrun --nnodes=2") for t in texts)
    assert "paralm sweep sweeps/X.yaml --count N" in texts  # an inline span across a line break


@pytest.mark.timeout(1800)  # a command runs after the earlier ones of its block (a fit, export, predict...)
@pytest.mark.parametrize("plan", [pytest.param(p, id=p.command.id, marks=[pytest.mark.slow] if p.slow else [])
                                  for p in PLANS])
def test_documented_command(plan, runner):
    result = runner.run(plan)
    how = f"substitute for `{plan.command.text}`" if plan.substitute else "as documented"
    assert result.returncode == plan.expect_exit, (
        f"{plan.command.id} ({how}) exited {result.returncode}, expected {plan.expect_exit}:\n{result.tail()}")
    assert plan.expect_output in result.output, f"{plan.command.id}: no {plan.expect_output!r} in output"
