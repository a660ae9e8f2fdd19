"""`paralm/launch.py` under `fabric run`: the launcher's LT_* settings become Trainer flags unless given."""

from __future__ import annotations

from paralm.launch import PEFT_FSDP, trainer_args_from_env

ENV = {"LT_ACCELERATOR": "cpu", "LT_DEVICES": "2", "LT_NUM_NODES": "1", "LT_PRECISION": "32-true", "LT_STRATEGY": "ddp"}


def test_launcher_settings_become_trainer_flags():
    assert trainer_args_from_env(["fit"], ENV) == ["--trainer.accelerator=cpu", "--trainer.strategy=ddp",
                                                   "--trainer.devices=2", "--trainer.num_nodes=1",
                                                   "--trainer.precision=32-true"]


def test_explicit_trainer_flags_win_in_both_spellings():
    argv = ["fit", "--trainer.devices", "1", "--trainer.strategy=lightning.pytorch.strategies.DDPStrategy"]
    assert trainer_args_from_env(argv, ENV) == ["--trainer.accelerator=cpu", "--trainer.num_nodes=1",
                                                "--trainer.precision=32-true"]


def test_unset_and_none_settings_are_left_to_the_config():
    assert trainer_args_from_env(["fit"], {"LT_STRATEGY": "None", "LT_DEVICES": ""}) == []


def test_launcher_fsdp_means_the_peft_aware_fsdp_strategy():
    assert trainer_args_from_env(["fit"], {"LT_STRATEGY": "fsdp"}) == [f"--trainer.strategy={PEFT_FSDP}"]
