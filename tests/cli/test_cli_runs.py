"""A run's files live under `<trainer.default_root_dir>/<run_name>/`, as the user starts it.

Two debug fits from one folder used to write the same `runs/debug_cpu/checkpoints/last.ckpt` whatever
their root, and `--resume auto` of one could pick the other's file; `--run_name` named nothing; the W&B
run had no name or group and held none of `data.*`/`trainer.*`; `config.yaml` went to a folder shared
by every run. One fit goes through the installed console script with W&B offline (read back from its
run file); the others run in-process (same code, without paying the start-up twice). Sequential:
two torch fits at once oversubscribe a 2-core machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from wandb_offline import records, run_file

import paralm.lightning_cli as lightning_cli
from paralm.lightning_cli import run_lightning_cli
from paralm.run_folder import default_run_name

ROOT = Path(__file__).resolve().parents[2]
PARALM = ROOT / ".venv" / "bin" / "paralm"
DEBUG = ["--config", "experiments/debug_cpu.yaml", "--trainer.enable_model_summary=false"]


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.is_file()}


def _wandb_run(folder: Path) -> tuple[str, str, dict]:
    """(name, group, config) of the offline W&B run in `folder`."""
    name = group = ""
    config: dict = {}
    for rec in records(run_file(folder)):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            name, group = rec.run.display_name, rec.run.run_group
            config.update({i.key: json.loads(i.value_json) for i in rec.run.config.update})
        elif kind == "config":
            config.update({i.key: json.loads(i.value_json) for i in rec.config.update})
    return name, group, config


def _in_process(argv: list[str]) -> int:
    saved = list(sys.argv)
    try:
        return run_lightning_cli(argv)
    finally:
        sys.argv[:] = saved


@pytest.fixture(scope="module")
def two_roots(tmp_path_factory):
    """Fit A (console script, W&B offline, a group) and fit B (in-process) from one config, two roots."""
    base = tmp_path_factory.mktemp("roots")
    root_a, root_b = base / "a", base / "b"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"}
    env.pop("WANDB_MODE", None)  # the config decides (offline: true below)
    proc = subprocess.run([str(PARALM), "fit", *DEBUG, "--trainer.max_steps=2", f"--trainer.default_root_dir={root_a}",
                           "--trainer.logger=lightning.pytorch.loggers.WandbLogger", "--trainer.logger.offline=true",
                           "--run_group=ablation-x"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        assert _in_process(["fit", *DEBUG, "--trainer.max_steps=2", f"--trainer.default_root_dir={root_b}"]) == 0
    finally:
        os.chdir(cwd)
    return root_a, root_b


def test_each_fit_writes_checkpoints_logs_and_config_inside_its_own_run_folder(two_roots):
    root_a, root_b = two_roots
    for root in (root_a, root_b):
        assert [p.name for p in root.iterdir()] == ["debug_cpu"]  # default run name: the config's stem
        run = root / "debug_cpu"
        assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "checkpoints" / "last.ckpt.ok").is_file()
        saved = yaml.safe_load((run / "config.yaml").read_text())
        assert saved["run_name"] == "debug_cpu" and saved["trainer"]["default_root_dir"] == str(root)
    assert list((root_a / "debug_cpu" / "wandb").glob("offline-run-*"))


def test_wandb_run_has_the_run_name_group_and_the_full_resolved_config(two_roots):
    name, group, config = _wandb_run(two_roots[0] / "debug_cpu" / "wandb")
    assert (name, group) == ("debug_cpu", "ablation-x")
    assert config["data"]["train_sources"][0]["path"] == "data/demo/shards/general"
    assert config["data"]["batch_size"] == 4 and "implicit_ratio" in config["data"]
    assert config["trainer"]["max_steps"] == 2 and config["seed_everything"] == 0
    assert config["model"]["projector"]["stack"] == 4 and config["optim"]["lora_lr"] == 1e-3


def test_resume_auto_of_each_run_picks_only_its_own_checkpoint(two_roots, monkeypatch):
    picked = []
    real = lightning_cli.resolve_resume
    monkeypatch.setattr(lightning_cli, "resolve_resume", lambda *a: picked.append(real(*a)) or picked[-1])
    monkeypatch.chdir(ROOT)
    for mine, other in (two_roots, reversed(two_roots)):
        before = _files(other)
        code = _in_process(["fit", *DEBUG, "--trainer.max_steps=3", f"--trainer.default_root_dir={mine}",
                            "--resume=auto"])
        assert code == 0
        assert picked[-1] == str(mine / "debug_cpu" / "checkpoints" / "last.ckpt")
        assert _files(other) == before  # the other run's files untouched
    assert len(picked) == 2


def test_validate_names_judge_results_by_the_checkpoint_step_and_never_overwrites(two_roots, monkeypatch):
    root = two_roots[1]
    ckpt = root / "debug_cpu" / "checkpoints" / "last.ckpt"
    step = json.loads(Path(f"{ckpt}.ok").read_text())["global_step"]
    assert step >= 2
    monkeypatch.chdir(ROOT)
    argv = ["validate", *DEBUG, f"--trainer.default_root_dir={root}", f"--ckpt_path={ckpt}",
            "--trainer.callbacks+=callbacks.JudgeEvalCallback", "--trainer.callbacks.max_samples=2",
            "--model.generation.max_new_tokens=2"]
    assert _in_process(argv) == 0 and _in_process(argv) == 0
    folders = sorted(p.name for p in (root / "debug_cpu" / "judge_eval").iterdir() if p.is_dir())
    assert folders == [f"step{step:07d}", f"step{step:07d}-2"]
    assert all((root / "debug_cpu" / "judge_eval" / f / "predictions.jsonl").stat().st_size > 0 for f in folders)


def test_default_run_name_is_the_config_stems_and_the_trial_id_under_a_wandb_agent():
    files = ["experiments/base.yaml", "/tmp/overlays/explicit.yaml"]
    assert default_run_name(files, {}) == "base+explicit" and default_run_name([], {}) == "run"
    agent = {"WANDB_SWEEP_ID": "s1", "WANDB_RUN_ID": "k3x9"}
    assert default_run_name(files[:1], agent) == "base-k3x9"  # each agent trial gets its own folder
