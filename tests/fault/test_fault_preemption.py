"""Preemption: SIGTERM mid-step and SIGUSR1 mid-validation end in a checkpoint at the next step boundary,
exit code 128 + signal, and a resume equal to the uninterrupted run; a step that outlasts the grace time
ends with 124 and no new checkpoint. The SIGUSR1 run looks like a SLURM job to Lightning (so Lightning's
auto-requeue handler is installed) to show that the two handlers do not both act.
"""

import os
import signal
import time

import pytest
from faultkit import (
    Case,
    callback,
    judge_server,
    max_abs_diff,
    shared_shards,
    start_reference,
    subprocess_env,
    tail,
)

from paralm.fault.checkpoint_io import verify
from paralm.fault.exits import EXIT_GRACE_EXPIRED, EXIT_PREEMPTED_SIGTERM, EXIT_PREEMPTED_SIGUSR1
from paralm.fault.preemption import GraceWatchdog, SignalFlag, parse_signals, slurm_job_id

SLURM = {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "paralm-test", "SLURM_JOB_ID": "4242", "SLURM_PROCID": "0",
         "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}
CASES = {  # name -> (signal, where, step it arrives in, step of the checkpoint it leads to)
    "sigterm_mid_step": ("SIGTERM", "backward", 37, 37),
    "sigusr1_in_validation": ("SIGUSR1", "validation", 50, 50),
}


def slurm_env(tmp):
    """Environment of a fake one-task SLURM job whose `scontrol` only records its arguments."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "scontrol"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp / "scontrol.log"}\n')
    fake.chmod(0o755)
    return subprocess_env(**SLURM, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

pytestmark = pytest.mark.timeout(900)  # the module's runs happen in the first test's fixture


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    reference, reference_done = start_reference(tmp_path_factory)
    shards = shared_shards(tmp_path_factory)
    root = tmp_path_factory.mktemp("fault_preemption")
    server = judge_server().start()
    try:
        cases = {name: Case(root / name, shards, judge_url=server.base_url) for name in CASES}
        envs = {"sigterm_mid_step": None, "sigusr1_in_validation": slurm_env(cases["sigusr1_in_validation"].dir)}
        grace = Case(root / "grace", shards)
        launches = {name: case.fit("preempted", callback("SignalAt", step=CASES[name][2], signal=CASES[name][0],
                                                         where=CASES[name][1]), env=envs[name])
                    for name, case in cases.items()}
        slow = callback("SignalAt", step=5, signal="SIGTERM", then_sleep_s=20.0)
        grace_launch = grace.fit("slow", slow, max_steps=10, ckpt_every=2, args=("--preemption.grace_s", "1"))
        preempted = {name: launch.wait() for name, launch in launches.items()}
        before = {name: (case.steps(), sorted(p.name for p in case.ckpt.iterdir())) for name, case in cases.items()}
        launches = {name: case.fit("resumed", env=envs[name], args=("--resume", "auto"))
                    for name, case in cases.items()}
        grace_run = grace_launch.wait()
        resumed = {name: launch.wait() for name, launch in launches.items()}
        reference_done()
    finally:
        server.stop()
    return reference, cases, preempted, before, resumed, (grace, grace_run)


@pytest.mark.parametrize("name,code", [("sigterm_mid_step", EXIT_PREEMPTED_SIGTERM),
                                       ("sigusr1_in_validation", EXIT_PREEMPTED_SIGUSR1)])
def test_signal_leads_to_checkpoint_at_next_step_boundary_and_documented_exit_code(runs, name, code):
    _, cases, preempted, before, _, _ = runs
    run, (signame, _, _, ckpt_step) = preempted[name], CASES[name]
    assert run.returncode == code, tail(run)
    assert f"preempted by {signame}" in run.stderr
    steps, files = before[name]
    assert max(steps) == ckpt_step  # the step in flight finished, nothing after it started
    path = cases[name].ckpt / next(f for f in files if f.startswith("preempted-") and f.endswith(".ckpt"))
    assert path.name.endswith(f"step={ckpt_step}.ckpt")
    verify(path)


@pytest.mark.parametrize("name", list(CASES))
def test_resume_after_preemption_equals_the_uninterrupted_run(runs, name):
    reference, cases, _, _, resumed, _ = runs
    run = resumed[name]
    assert run.returncode == 0, tail(run)
    assert f"resuming from {cases[name].ckpt}/preempted-" in run.stderr
    want, got = reference.checkpoint(100), cases[name].checkpoint(100)
    assert got["global_step"] == 100
    assert max_abs_diff(want["state_dict"], got["state_dict"]) == 0.0
    assert max_abs_diff(want["optimizer_states"], got["optimizer_states"]) == 0.0
    ref_steps, steps = reference.steps(), cases[name].steps()
    assert [(s, steps[s]["loss"], steps[s]["keys"]) for s in range(1, 101)] == [
        (s, ref_steps[s]["loss"], ref_steps[s]["keys"]) for s in range(1, 101)]


@pytest.mark.parametrize("name", list(CASES))
def test_interrupted_validation_is_rerun_and_judged_after_resume(runs, name):
    """The SIGUSR1 run stops inside the validation of step 50; the resumed run repeats that validation
    (and the judge evaluation it triggers), so both logs equal the uninterrupted run."""
    reference, cases, _, _, _, _ = runs
    validated = cases[name].validated_at()
    want = reference.validated_at()
    assert sorted(set(validated)) == want == [25, 50, 75, 100]
    assert cases[name].judge_cache() == reference.judge_cache()


def test_slurm_requeue_is_done_once_by_paralm_and_lightning_handler_stays_out(runs):
    _, cases, _, _, _, _ = runs
    folder = cases["sigusr1_in_validation"].dir
    assert (folder / "scontrol.log").read_text().splitlines() == ["requeue 4242"]
    assert not list(folder.rglob("hpc_ckpt_*"))  # Lightning's SIGUSR1 handler never saved


def test_step_outlasting_the_grace_time_exits_124_without_a_new_checkpoint(runs):
    *_, (grace, run) = runs
    assert run.returncode == EXIT_GRACE_EXPIRED, tail(run)
    assert "grace_s=1" in run.stderr
    names = sorted(p.name for p in grace.ckpt.glob("*.ckpt"))
    assert names == ["epoch=0-step=2.ckpt", "epoch=0-step=4.ckpt"]
    for name in names:
        verify(grace.ckpt / name)


# ---- in-process units of the same machinery ------------------------------------------------------------
def test_signal_handler_only_records_and_restores_the_previous_handler():
    previous = signal.getsignal(signal.SIGUSR2)
    flag = SignalFlag([signal.SIGUSR2])
    assert flag.install()
    try:
        os.kill(os.getpid(), signal.SIGUSR2)
        os.kill(os.getpid(), signal.SIGUSR2)
        time.sleep(0.01)
        assert flag.signum == signal.SIGUSR2 and flag.seconds_since() >= 0
    finally:
        flag.restore()
    assert signal.getsignal(signal.SIGUSR2) == previous


def test_watchdog_fires_after_grace_unless_disarmed():
    fired = []
    flag = SignalFlag([signal.SIGUSR2])
    dog = GraceWatchdog(flag, grace_s=0.05, poll_s=0.01, exit_fn=fired.append)
    dog.start()
    time.sleep(0.1)
    assert fired == []  # no signal, no deadline
    flag._handle(signal.SIGUSR2, None)
    deadline = time.monotonic() + 2
    while not fired and time.monotonic() < deadline:
        time.sleep(0.01)
    dog.stop()
    assert fired == [EXIT_GRACE_EXPIRED]

    calm = []
    flag2 = SignalFlag([signal.SIGUSR2])
    dog2 = GraceWatchdog(flag2, grace_s=0.05, poll_s=0.01, exit_fn=calm.append)
    dog2.start()
    flag2._handle(signal.SIGUSR2, None)
    dog2.disarm()
    time.sleep(0.15)
    dog2.stop()
    assert calm == []


def test_bad_signal_names_and_job_ids_are_refused_with_choices():
    assert parse_signals(["sigterm", "USR1"]) == (signal.SIGTERM, signal.SIGUSR1)
    with pytest.raises(ValueError, match="valid: SIGTERM, SIGUSR1"):
        parse_signals(["SIGKILL"])
    assert slurm_job_id({"SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "3", "SLURM_JOB_ID": "9"}) == "7_3"
    assert slurm_job_id({}) is None
    with pytest.raises(ValueError, match="refusing"):
        slurm_job_id({"SLURM_JOB_ID": "1; rm -rf /"})


# ---- longer variant (-m slow) ------------------------------------------------------------------------------
DDP = ["--trainer.devices=2", "--trainer.strategy=lightning.pytorch.strategies.DDPStrategy",
       "--trainer.strategy.timeout=0:01:00"]


@pytest.mark.slow
def test_sigterm_to_one_rank_stops_both_at_the_same_step_and_resumes_identically(tmp_path_factory):
    """Only rank 0 receives SIGTERM; the all-reduced flag makes both ranks write one checkpoint at the
    same step and exit 143; the resumed two-rank run ends equal to an uninterrupted one."""
    shards = shared_shards(tmp_path_factory)
    root = tmp_path_factory.mktemp("fault_preemption_ddp")
    reference, case = (Case(root / name, shards, per_rank=True) for name in ("reference", "preempted"))
    term = callback("SignalAt", step=37, signal="SIGTERM")
    runs = [reference.fit("reference", args=DDP), case.fit("preempted", term, args=DDP)]
    ref_run, preempted = (r.wait() for r in runs)
    assert ref_run.returncode == 0, tail(ref_run)
    assert preempted.returncode == EXIT_PREEMPTED_SIGTERM, tail(preempted)
    assert max(case.steps(0)) == max(case.steps(1)) == 37
    (written,) = case.ckpt.glob("preempted-*.ckpt")
    assert written.name.endswith("-step=37.ckpt")
    resumed = case.fit("resumed", args=(*DDP, "--resume", "auto")).wait()
    assert resumed.returncode == 0, tail(resumed)
    want, got = reference.checkpoint(100), case.checkpoint(100)
    assert max_abs_diff(want["state_dict"], got["state_dict"]) == 0.0
    assert max_abs_diff(want["optimizer_states"], got["optimizer_states"]) == 0.0
    for rank in (0, 1):
        assert [case.steps(rank)[s]["keys"] for s in range(1, 101)] == [
            reference.steps(rank)[s]["keys"] for s in range(1, 101)]
