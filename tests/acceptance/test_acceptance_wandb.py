"""A fresh `paralm fit` with W&B (offline) and the judge callback, read back from the run's own file.

What a researcher opens in W&B must be there: the run's name and group, the whole resolved config (data
sources and prompt modes included, which ablations and sweeps vary), the losses, the judge metrics and
a judge table whose rows carry the clip that was judged. The fit runs through the installed console
script with `WANDB_MODE` unset (the config decides), against the fault-injecting test server.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from acc_workspace import FIT_STEPS, make_workspace, write_yaml
from wandb_offline import history, records

pytestmark = pytest.mark.timeout(900)  # subprocess fits on a busy 2-core machine
RUN, GROUP = "acc-run", "acc-group"
JUDGE_REPLY = json.dumps({"rationale": "close to the reference", "rating": 4})


def overlay(server_url: str, judge_dir: str) -> dict:
    return {
        "trainer": {
            "logger": {"class_path": "lightning.pytorch.loggers.WandbLogger",
                       "init_args": {"project": "paralm-acceptance", "offline": True}},
            "callbacks": [{"class_path": "callbacks.JudgeEvalCallback",
                           "init_args": {"every_n_validations": 1, "judge_base_url": server_url,
                                         "judge_model": "fake-judge", "out_dir": judge_dir, "timeout_s": 10,
                                         "max_samples": 4, "audio_rows": 2}}]},
        "model": {"generation": {"max_new_tokens": 4}},
    }


def run_config(path: Path) -> dict:
    """The W&B run config as the run file holds it (run record, then config updates)."""
    config = {}
    for rec in records(path):
        kind = rec.WhichOneof("record_type")
        items = rec.run.config.update if kind == "run" else rec.config.update if kind == "config" else []
        for item in items:
            config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return config


def run_record(path: Path):
    return next(rec.run for rec in records(path) if rec.WhichOneof("record_type") == "run")


def key_paths(value, prefix: str = "") -> set[str]:
    """Every dotted key path of a nested config (W&B wraps values as {"value": ...})."""
    if isinstance(value, dict):
        out = set()
        for k, v in value.items():
            path = prefix if k == "value" else f"{prefix}.{k}" if prefix else str(k)
            out |= {path} | key_paths(v, path)
        return out
    return set()


@pytest.fixture(scope="module")
def fit_run(tmp_path_factory):
    from fake_openai_server import FakeOpenAIServer

    ws = make_workspace(tmp_path_factory.mktemp("wandb_fit"))
    env = ws.env()
    env.pop("WANDB_MODE")  # the config decides, as for a user who never exported it
    with FakeOpenAIServer(reply_fn=lambda body: JUDGE_REPLY) as server:
        write_yaml(ws.path / "wandb_judge.yaml", overlay(server.base_url, "judge_out"))
        result = ws.run(["paralm", "fit", "--config", "experiments/debug_cpu.yaml", "--config", "wandb_judge.yaml",
                         "--run_name", RUN, "--run_group", GROUP, *FIT_STEPS], env=env)
        requests = len(server.chat_requests())
    assert result.returncode == 0, result.tail()
    files = sorted(ws.path.rglob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, f"expected one offline W&B run, found {files}\n{result.tail()}"
    return ws, files[0], requests


def test_run_lives_in_its_own_folder_and_keeps_its_config_there(fit_run):
    ws, run_file, _ = fit_run
    run_folder = ws.path / "runs" / RUN
    assert run_folder in run_file.parents, f"W&B run {run_file} is outside the run folder {run_folder}"
    assert (run_folder / "config.yaml").is_file()


def test_run_has_its_name_and_group(fit_run):
    run = run_record(fit_run[1])
    assert (run.display_name, run.run_group) == (RUN, GROUP)


def test_run_config_holds_data_trainer_model_and_seed(fit_run):
    paths = key_paths(run_config(fit_run[1]))
    for needed in ("data.train_sources", "data.implicit_ratio", "data.train_prompt", "data.eval_prompt",
                   "trainer.max_steps", "model.projector", "seed_everything"):
        assert any(p == needed or p.endswith("." + needed) for p in paths), (
            f"{needed} missing from the W&B config; it has {sorted(p for p in paths if p.count('.') < 2)}")


def test_losses_and_judge_metrics_are_logged(fit_run):
    _, run_file, requests = fit_run
    rows = history(run_file)
    logged = set().union(*map(set, rows))
    assert {"train/loss", "val/loss"} <= logged, sorted(logged)
    judged = [r for r in rows if "judge/score" in r]
    assert requests > 0 and judged, "the judge was never asked or its score never logged"
    assert judged[-1]["judge/score"] == pytest.approx(80.0)  # rating 4 of 5, x 20


def table_artifacts(path: Path) -> list:
    """The `run_table` artifacts of a run: W&B stores a logged table with media as one (table JSON with
    its cells as media references, plus the media files), staged locally until `wandb sync`."""
    return [rec.artifact for rec in records(path)
            if rec.WhichOneof("record_type") == "artifact" and rec.artifact.type == "run_table"]


def test_judge_table_rows_carry_the_judged_clip(fit_run):
    _, run_file, _ = fit_run
    tables = [a for a in table_artifacts(run_file) if "judge_eval" in a.name]
    assert tables, f"no judge table artifact in {run_file}"
    entries = {e.path: e for e in tables[-1].manifest.contents}
    wavs = [e for p, e in entries.items() if p.startswith("media/audio/")]
    assert wavs and all(e.size > 1000 for e in wavs), f"no audio clip in the judge table: {sorted(entries)}"
    table_json = next(e for p, e in entries.items() if p.endswith(".table.json"))
    table = json.loads(Path(table_json.local_path).read_text())
    first = table["data"][0][table["columns"].index("audio")]
    assert isinstance(first, dict) and first.get("_type") == "audio-file", f"audio cell is {first!r}"
    assert first["path"] in entries, f"the audio cell points at {first['path']}, not a file of the table"
