"""Two-process CPU DDP (gloo, 60-s collective timeout) through the CLI and through `fabric run`.

Each rank records, per step, which training items it got, and saves its trained weights at the end
(`RankRecorder`, added on the command line). The reference is a one-process run with twice the
per-process batch. They agree exactly in theory because (a) with `samples_per_epoch` equal to the
global batch, each epoch's seeded plan draws the same items for both setups, so the global batch at
step k is the same set of samples, and (b) the training loss is normalised by the answer-token count
of all ranks (`runtime.loss_norm: global_tokens`), so DDP's gradient average equals the one-process
gradient. A per-rank token mean would not: the ranks' token counts differ.

The CLI run is a `paralm sweep` trial whose command is `paralm fit --trainer.devices=2 ...`, so the
same run also shows that swept values reach both ranks as command-line arguments.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from sweepkit import (
    BIN,
    DEBUG_CONFIG,
    LAUNCH,
    build_shards,
    child_env,
    read_state,
    sweep_argv,
    write_overlay,
    write_sweep,
)

pytestmark = pytest.mark.timeout(600)  # the module's runs happen in a fixture, inside the first test's time
PER_RANK_BATCH, STEPS, LORA_LR = 2, 3, 0.003
DDP = ["--trainer.strategy=lightning.pytorch.strategies.DDPStrategy", "--trainer.strategy.timeout=0:01:00"]


class RankRecorder(Callback):
    """Writes `<out_dir>/rank<r>.json` (world size, items per step) and `rank<r>.pt` (trained weights)."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.steps: list[list[list]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.steps.append([[k, m["qa_index"]] for k, m in zip(batch.keys, batch.meta, strict=True)])

    def on_train_end(self, trainer, pl_module) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        rank = trainer.global_rank
        torch.save(pl_module.net.trainable_state_dict(), self.out_dir / f"rank{rank}.pt")
        record = {"rank": rank, "world_size": trainer.world_size, "steps": self.steps}
        (self.out_dir / f"rank{rank}.json").write_text(json.dumps(record))


def recorder_args(out: Path) -> list[str]:
    return [f"--trainer.callbacks+={__name__}.RankRecorder", f"--trainer.callbacks.out_dir={out}"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    overlay = write_overlay(
        tmp / "overlay.yaml", build_shards(tmp),
        trainer={"max_steps": STEPS, "val_check_interval": 1.0, "callbacks": [], "enable_checkpointing": False},
        data={"batch_size": PER_RANK_BATCH, "samples_per_epoch": 2 * PER_RANK_BATCH})
    return tmp, ["--config", str(DEBUG_CONFIG), "--config", str(overlay)]


def _run(argv: list[str], cwd: Path) -> None:
    env = child_env()  # the ranks import RankRecorder from this module, which lives in tests/launch/
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent), env["PYTHONPATH"]])
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _load(out: Path, ranks: int) -> list[dict]:
    records = []
    for r in range(ranks):
        rec = json.loads((out / f"rank{r}.json").read_text())
        rec["weights"] = torch.load(out / f"rank{r}.pt", weights_only=True)
        records.append(rec)
    return records


@pytest.fixture(scope="module")
def reference(setup):
    tmp, configs = setup
    out = tmp / "reference"
    _run([str(BIN / "paralm"), "fit", *configs, f"--data.batch_size={2 * PER_RANK_BATCH}",
          f"--model.optim.lora_lr={LORA_LR}", *recorder_args(out)], tmp)
    return _load(out, 1)[0]


@pytest.fixture(scope="module")
def cli_sweep_trial(setup):
    """`paralm sweep` with one grid point whose trial is `paralm fit --trainer.devices=2 ...` under DDP."""
    tmp, configs = setup
    out = tmp / "cli"
    sweep = write_sweep(tmp / "ddp.yaml", {
        "name": "ddp-trial", "method": "grid", "metric": {"name": "val/loss", "goal": "minimize"},
        "parameters": {"model.optim.lora_lr": {"values": [LORA_LR]}, "data.implicit_ratio": {"values": [0.0]}},
        "command": ["${env}", "paralm", "fit", *configs, "--trainer.devices=2", *DDP, *recorder_args(out), "${args}"],
    })
    _run(sweep_argv(sweep, tmp / "sweep"), tmp)
    trial = read_state(tmp / "sweep")["trials"][0]
    views = [json.loads(p.read_text()) for p in sorted((tmp / "sweep" / trial["dir"] / "ranks").glob("rank*.json"))]
    return {"ranks": _load(out, 2), "trial": trial, "views": views}


@pytest.fixture(scope="module")
def fabric_ranks(setup):
    tmp, configs = setup
    out = tmp / "fabric"
    _run([str(BIN / "fabric"), "run", "--accelerator", "cpu", "--devices", "2", str(LAUNCH), "fit", *configs, *DDP,
          f"--model.optim.lora_lr={LORA_LR}", *recorder_args(out)], tmp)
    return _load(out, 2)


def _assert_disjoint_and_same_global_batches(ranks: list[dict], reference: dict) -> None:
    assert [r["world_size"] for r in ranks] == [2, 2] and reference["world_size"] == 1
    assert len(ranks[0]["steps"]) == len(ranks[1]["steps"]) == len(reference["steps"]) == STEPS
    for step, (a, b, ref) in enumerate(zip(ranks[0]["steps"], ranks[1]["steps"], reference["steps"], strict=True)):
        mine, theirs = {tuple(x) for x in a}, {tuple(x) for x in b}
        assert len(a) == len(b) == PER_RANK_BATCH and not mine & theirs, f"step {step}: ranks share items"
        assert sorted(map(tuple, a + b)) == sorted(map(tuple, ref)), f"step {step}: global batch differs"


def _assert_weights_match(ranks: list[dict], reference: dict) -> None:
    w0, w1, ref = ranks[0]["weights"], ranks[1]["weights"], reference["weights"]
    assert w0.keys() == w1.keys() == ref.keys() and w0
    for name in w0:
        assert torch.equal(w0[name], w1[name]), f"{name} differs between ranks"
        assert (w0[name] - ref[name]).abs().max().item() <= 1e-5, f"{name} differs from the one-process run"
    initial_b = [n for n in ref if "lora_B" in n]
    assert initial_b and all(ref[n].abs().max() > 0 for n in initial_b)  # LoRA B starts at zero: it trained


def test_cli_ddp_ranks_train_on_disjoint_samples_of_the_same_global_batches(cli_sweep_trial, reference):
    _assert_disjoint_and_same_global_batches(cli_sweep_trial["ranks"], reference)


def test_cli_ddp_weights_equal_on_both_ranks_and_match_one_process_double_batch(cli_sweep_trial, reference):
    _assert_weights_match(cli_sweep_trial["ranks"], reference)


def test_fabric_run_ranks_train_on_disjoint_samples_of_the_same_global_batches(fabric_ranks, reference):
    _assert_disjoint_and_same_global_batches(fabric_ranks, reference)


def test_fabric_run_weights_equal_on_both_ranks_and_match_one_process_double_batch(fabric_ranks, reference):
    _assert_weights_match(fabric_ranks, reference)


def test_two_process_sweep_trial_ranks_see_the_same_swept_values(cli_sweep_trial):
    trial, views = cli_sweep_trial["trial"], cli_sweep_trial["views"]
    assert trial["status"] == "finished"
    assert [v["rank"] for v in views] == [0, 1] and all(v["world_size"] == 2 for v in views)
    expected = {"model.optim.lora_lr": LORA_LR, "data.implicit_ratio": 0.0}
    for view in views:
        assert view["params"] == expected  # debug_cpu.yaml says lora_lr 1e-3 and no implicit_ratio
        assert set(view["source"].values()) == {"object"}  # read from the instantiated module / datamodule
