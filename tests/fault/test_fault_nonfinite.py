"""Non-finite steps: a NaN batch (step 5) and an inf loss (step 8) are skipped and counted with the
optimiser state untouched, or (policy halt) stop the run with exit code 4 and the last good checkpoint
intact. Two `paralm fit` subprocesses, checkpoints after every step."""

import math
from types import SimpleNamespace

import pytest
import torch
from faultkit import Case, callback, max_abs_diff, shared_shards, tail

from callbacks.nonfinite import NonFiniteGuard, NonFiniteHalt
from paralm.fault.checkpoint_io import first_nonfinite, verify
from paralm.fault.exits import EXIT_NONFINITE_HALT

NAN_STEP, INF_STEP = 5, 8


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    shards = shared_shards(tmp_path_factory)
    root = tmp_path_factory.mktemp("fault_nonfinite")
    skip, halt = Case(root / "skip", shards), Case(root / "halt", shards)
    nan = callback("NanBatchAt", steps=[NAN_STEP])
    launches = [skip.fit("skip", nan, callback("InfLossAt", steps=[INF_STEP]), max_steps=10, ckpt_every=1),
                halt.fit("halt", nan, max_steps=10, ckpt_every=1, args=("--nonfinite.policy", "halt"))]
    skip_run, halt_run = (launch.wait() for launch in launches)
    return skip, skip_run, halt, halt_run


def test_skip_policy_counts_both_bad_steps_and_finishes(runs):
    skip, run, _, _ = runs
    assert run.returncode == 0, tail(run)
    steps = skip.steps()
    assert math.isnan(steps[NAN_STEP]["loss"]) and steps[INF_STEP]["loss"] == math.inf
    assert all(math.isfinite(steps[s]["loss"]) for s in steps if s not in (NAN_STEP, INF_STEP))
    guard = skip.checkpoint(10)["callbacks"]["NonFiniteGuard"]
    assert (guard["skipped"], guard["skipped_steps"]) == (2, [NAN_STEP, INF_STEP])


@pytest.mark.parametrize("bad_step", [NAN_STEP, INF_STEP])
def test_skipped_step_leaves_weights_and_optimizer_state_unchanged(runs, bad_step):
    skip, _, _, _ = runs
    before, after, next_ = (skip.checkpoint(s) for s in (bad_step - 1, bad_step, bad_step + 1))
    assert after["global_step"] == bad_step  # the step counts; only the update is dropped
    assert max_abs_diff(before["state_dict"], after["state_dict"]) == 0.0
    assert max_abs_diff(before["optimizer_states"][0]["state"], after["optimizer_states"][0]["state"]) == 0.0
    assert max_abs_diff(after["state_dict"], next_["state_dict"]) > 0  # training goes on afterwards


def test_no_checkpoint_of_the_skip_run_holds_a_nonfinite_value(runs):
    skip, _, _, _ = runs
    for path in sorted(skip.ckpt.glob("*.ckpt")):
        verify(path)
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        assert first_nonfinite({"s": ckpt["state_dict"], "o": ckpt["optimizer_states"]}) is None, path.name


def test_halt_policy_exits_4_before_the_update_with_last_checkpoint_intact(runs):
    _, _, halt, run = runs
    assert run.returncode == EXIT_NONFINITE_HALT, tail(run)
    assert f"non-finite loss or gradient at step {NAN_STEP}" in run.stderr
    names = sorted(p.name for p in halt.ckpt.glob("*.ckpt"))
    assert names == [f"epoch=0-step={s}.ckpt" for s in range(1, NAN_STEP)]
    last = halt.ckpt / f"epoch=0-step={NAN_STEP - 1}.ckpt"
    verify(last)
    assert first_nonfinite(torch.load(last, map_location="cpu", weights_only=True)["state_dict"]) is None


# ---- the guard on its own ----------------------------------------------------------------------------------
def _step(guard: NonFiniteGuard, grad: float, step: int = 0) -> torch.nn.Parameter:
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.tensor([0.1, grad, 0.2])
    trainer = SimpleNamespace(precision_plugin=SimpleNamespace(), global_step=step, checkpoint_callback=None)
    guard.on_before_optimizer_step(trainer, None, torch.optim.SGD([p], lr=0.1))
    return p


def test_guard_drops_nonfinite_gradients_and_keeps_finite_ones():
    guard = NonFiniteGuard("skip", max_consecutive=0)
    assert _step(guard, float("nan")).grad is None
    assert _step(guard, 0.5).grad is not None
    assert (guard.skipped, guard.consecutive, guard.skipped_steps) == (1, 0, [1])


def test_guard_skips_an_inf_loss_even_when_its_gradients_are_finite():
    guard = NonFiniteGuard("skip")
    guard.on_before_backward(None, None, torch.tensor(2.0))
    guard.on_before_backward(None, None, torch.tensor(float("inf")))  # second micro-batch of an accumulation
    assert _step(guard, 0.5, step=6).grad is None and guard.skipped_steps == [7]
    assert _step(guard, 0.5, step=7).grad is not None  # the flag does not outlive its update


def test_guard_halts_after_too_many_bad_steps_in_a_row_and_restores_its_counts():
    guard = NonFiniteGuard("skip", max_consecutive=2)
    _step(guard, float("inf"), step=3)
    with pytest.raises(NonFiniteHalt, match="2 non-finite steps in a row"):
        _step(guard, float("nan"), step=4)
    fresh = NonFiniteGuard()
    fresh.load_state_dict(guard.state_dict())
    assert fresh.state_dict() == {"skipped": 1, "consecutive": 1, "skipped_steps": [4]}


def test_unknown_policy_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="valid: skip, halt"):
        NonFiniteGuard("ignore")
