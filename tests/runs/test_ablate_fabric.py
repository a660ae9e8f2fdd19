"""`paralm ablate --launcher fabric --devices 2` trains a row of experiments/ablation_paper.yaml as two
CPU processes (gloo) and ends with the weights and answers of the one-process `--launcher local` run.

Why they agree: `train.batch_size` is the global batch of a step (paralm/runs/ablate_fit.py), so each
of the two processes takes half of it from the same seeded global plan, and the loss is normalised by
the answer tokens of all ranks (`model.runtime.loss_norm: global_tokens`), so DDP's averaged gradient
is the one-process gradient (the argument of tests/launch/test_launch_ddp.py). The only difference left is the
order of floating-point sums (the all-reduce adds two half-batch gradients), hence a tolerance of 1e-5
on the weights, as the DDP tests use; the answers (greedy decoding) must be identical.

Dropout is set to 0 for this comparison: each process draws its own dropout masks, so with LoRA
dropout (base.yaml: 0.05) no two-process run can reproduce the one-process masks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from ablatekit import shared_kit
from test_ablate_paper import write_paper_files

from paralm.fault.exits import UserError
from paralm.runs.ablate.config import load_ablation, select
from paralm.runs.ablate.fit import process_batch

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ROW = "baseline"
NO_DROPOUT = {"model": {"model": {"llm": {"lora": {"dropout": 0.0}}}}}



def ablate(paper: Path, out: Path, *launcher: str) -> str:
    """`paralm ablate` as a user types it (one row, one seed, two steps); returns its output."""
    argv = [str(BIN / "paralm"), "ablate", str(paper / "paper.yaml"), "--fit-config", str(paper / "tiny_cpu.yaml"),
            "--fit-config", str(paper / "no_dropout.yaml"), "--steps", "2", "--rows", ROW, "--seeds", "1",
            "--out", str(out), *launcher]
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", WANDB_MODE="offline")
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fabric's workers are in this group: killed together on timeout
    try:
        output, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"paralm ablate {' '.join(launcher)} timed out:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-4000:]
    return output


def trained_weights(out: Path) -> dict[str, torch.Tensor]:
    from paralm.fault.checkpoint_io import load_verified

    return load_verified(out / "runs" / f"{ROW}-seed0" / "checkpoints" / "last.ckpt")["state_dict"]


def answers(out: Path, condition: str = "predictions") -> list[tuple[str, str, str]]:
    path = out / "results" / ROW / "seed0" / f"{condition}.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(r["key"], r["question"], r["answer"]) for r in rows]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Both runs of the row (the first caller also pays the session's kit preparation)."""
    shards, cache = shared_kit(tmp_path_factory)
    paper = write_paper_files(tmp_path_factory.mktemp("paper_fabric"), shards, cache)
    (paper / "no_dropout.yaml").write_text(yaml.safe_dump(NO_DROPOUT))
    local = ablate(paper, paper / "local", "--launcher", "local")
    fabric = ablate(paper, paper / "fabric", "--launcher", "fabric", "--devices", "2")
    return {"local": (paper / "local", local), "fabric": (paper / "fabric", fabric)}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_fabric_two_processes_train_the_weights_of_the_one_process_run(runs):
    (local, _), (fabric, output) = runs["local"], runs["fabric"]
    assert "fabric run --accelerator=cpu --devices=2" in output
    overlay = yaml.safe_load((fabric / "overlays" / f"{ROW}.yaml").read_text())
    assert overlay["data"]["batch_size"] == 16  # the paper's global batch of 32, half per process
    assert yaml.safe_load((local / "overlays" / f"{ROW}.yaml").read_text())["data"]["batch_size"] == 32
    one, two = trained_weights(local), trained_weights(fabric)
    assert one.keys() == two.keys() and any("lora_B" in k for k in one)
    assert all(one[k].abs().max() > 0 for k in one if "lora_B" in k)  # LoRA B starts at 0: it trained
    worst = max((one[k] - two[k]).abs().max().item() for k in one)
    assert worst <= 1e-5, f"largest weight difference {worst:.3g}"


@pytest.mark.slow
def test_fabric_run_answers_the_test_items_exactly_as_the_one_process_run(runs):
    (local, _), (fabric, _) = runs["local"], runs["fabric"]
    for condition in ("predictions", "predictions_shuffled"):
        mine, reference = answers(fabric, condition), answers(local, condition)
        assert len(reference) == 24 and mine == reference


# Fast part (default run): the split that makes the runs comparable. The two runs above are `slow`
# (about 2 x 60 s on 2 shared cores, more than this test budget).
def test_each_launched_process_takes_its_share_of_the_global_batch():
    paper = load_ablation(ROOT / "experiments" / "ablation_paper.yaml")  # train.batch_size 32
    assert process_batch(select(paper, launcher="local")) == 32
    assert process_batch(select(paper, launcher="fabric", devices=2)) == 16
    assert process_batch(select(paper, launcher="torchrun", devices=8)) == 4
    assert process_batch(select(paper, launcher="slurm", devices=2)) == 32  # a task trains in one process


def test_a_global_batch_the_devices_do_not_divide_is_refused():
    with pytest.raises(UserError, match="train.batch_size 32 is the global batch of a step; --devices 3"):
        process_batch(select(load_ablation(ROOT / "experiments" / "ablation_paper.yaml"), launcher="fabric",
                             devices=3))
