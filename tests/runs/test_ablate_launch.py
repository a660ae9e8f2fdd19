"""Each launcher runs the same `paralm fit` arguments: in this process, or under fabric / torchrun with N devices."""

from pathlib import Path

import pytest

from paralm.runs.ablate.launch import LAUNCH_SCRIPT, fit_command

ARGS = ["fit", "--config", "base.yaml", "--config", "row.yaml", "--seed_everything", "1"]


def test_local_trains_in_this_process():
    assert fit_command("local", ARGS, 1) is None


def test_fabric_runs_the_launch_script_with_the_fit_arguments_unchanged():
    cmd = fit_command("fabric", ARGS, 2, "cpu")
    assert Path(cmd[0]).name == "fabric" and cmd[1:4] == ["run", "--accelerator=cpu", "--devices=2"]
    assert cmd[4] == str(LAUNCH_SCRIPT) and cmd[5:] == ARGS


def test_torchrun_starts_one_process_per_device_and_tells_the_trainer():
    cmd = fit_command("torchrun", ARGS, 4)
    assert Path(cmd[0]).name == "torchrun" and cmd[1:3] == ["--standalone", "--nproc_per_node=4"]
    assert cmd[3] == str(LAUNCH_SCRIPT) and cmd[4:] == [*ARGS, "--trainer.devices=4"]


def test_slurm_is_not_a_per_pair_launcher():
    with pytest.raises(ValueError, match="valid: local, fabric, torchrun, slurm"):
        fit_command("slurm", ARGS, 1)
