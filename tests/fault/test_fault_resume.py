"""SIGKILL at step 37 of a 100-step run, resume from the last complete checkpoint: nothing differs.

Three `paralm fit` subprocesses run at once (the uninterrupted reference and two runs killed by a real
SIGKILL during step 37, with 0 and 2 dataloader workers), then both resume with `--resume auto`. The
shard set carries damaged samples, so skip counters are exercised too, and the reference and the
workers=0 run are judged (JudgeEvalCallback against a fake judge) at steps 50 and 100, so the judge
cache is compared as well.
"""

import pytest
from faultkit import Case, judge_server, max_abs_diff, shared_shards, start_reference, tail

KILL_STEP = 37
LAST_CKPT = 30  # checkpoints every 10 steps

pytestmark = pytest.mark.timeout(900)  # the module's runs happen in the first test's fixture


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    reference, reference_done = start_reference(tmp_path_factory)
    shards = shared_shards(tmp_path_factory)
    root = tmp_path_factory.mktemp("fault_resume")
    kill = {"class_path": "faultcallbacks.SignalAt", "init_args": {"step": KILL_STEP, "signal": "SIGKILL"}}
    with judge_server() as server:
        cases = {0: Case(root / "workers0", shards, judge_url=server.base_url), 2: Case(root / "workers2", shards)}
        launches = {w: case.fit("killed", kill, workers=w) for w, case in cases.items()}
        killed = {w: launch.wait() for w, launch in launches.items()}
        before = {w: (case.steps(), sorted(p.name for p in case.ckpt.glob("*.ckpt"))) for w, case in cases.items()}
        launches = {w: case.fit("resumed", workers=w, args=("--resume", "auto")) for w, case in cases.items()}
        resumed = {w: launch.wait() for w, launch in launches.items()}
        reference_done()
    return reference, cases, (killed, before), resumed


def test_sigkill_leaves_checkpoints_up_to_the_last_complete_one(runs):
    _, cases, (killed, before), _ = runs
    for w, run in killed.items():
        assert run.returncode == -9, tail(run)
        steps, written = before[w]
        assert sorted(steps) == list(range(1, KILL_STEP))  # died inside step 37
        assert written == [f"epoch=0-step={s}.ckpt" for s in (10, 20)] + [f"epoch=1-step={LAST_CKPT}.ckpt"]


def test_resume_auto_picks_the_newest_checkpoint_and_finishes(runs):
    _, _, _, resumed = runs
    for run in resumed.values():
        assert run.returncode == 0, tail(run)
        assert "resuming from " in run.stderr and f"step={LAST_CKPT}.ckpt" in run.stderr


@pytest.mark.parametrize("workers", [0, 2])
def test_resumed_run_ends_with_identical_weights_optimizer_and_step(runs, workers):
    reference, cases, _, _ = runs
    want, got = reference.checkpoint(100), cases[workers].checkpoint(100)
    assert got["global_step"] == want["global_step"] == 100
    assert want["state_dict"] and want["optimizer_states"][0]["state"]
    assert max_abs_diff(want["state_dict"], got["state_dict"]) == 0.0
    assert max_abs_diff(want["optimizer_states"], got["optimizer_states"]) == 0.0
    assert got["lr_schedulers"] == want["lr_schedulers"]


@pytest.mark.parametrize("workers", [0, 2])
def test_losses_after_resume_match_the_uninterrupted_run(runs, workers):
    reference, cases, _, _ = runs
    want, got = reference.steps(), cases[workers].steps()
    assert sorted(got) == sorted(want) == list(range(1, 101))
    assert [got[s]["loss"] for s in range(LAST_CKPT + 1, 101)] == [want[s]["loss"] for s in range(LAST_CKPT + 1, 101)]


@pytest.mark.parametrize("workers", [0, 2])
def test_sample_order_across_resume_has_nothing_replayed_or_skipped(runs, workers):
    """Steps 1..36 come from the killed run, 31..100 from the resumed one (31..36 recomputed)."""
    reference, cases, _, _ = runs
    want, got = reference.steps(), cases[workers].steps()
    keys = [(s, got[s]["epoch"], got[s]["keys"]) for s in range(1, 101)]
    assert keys == [(s, want[s]["epoch"], want[s]["keys"]) for s in range(1, 101)]
    assert len({want[s]["epoch"] for s in want}) > 1  # the run crosses epoch boundaries (reshuffled plans)


def _skip_summary(ckpt: dict) -> list:
    """Skip counters per rank; record details are compared without free-text detail (it names objects)."""
    out = []
    for rank in ckpt["MixtureDataModule"]["skips"]:
        skips = rank["skips"]
        records = [(r["key"], r["shard"], r["reason"]) for r in skips["records"]]
        out.append((skips["counts"], skips["delivered"], rank["metadata_missing"], records))
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_counters_after_resume_equal_the_uninterrupted_run(runs, workers):
    reference, cases, _, _ = runs
    want = _skip_summary(reference.checkpoint(100))
    assert sum(want[0][0].values()) > 0  # the damaged shards really were skipped
    assert _skip_summary(cases[workers].checkpoint(100)) == want
    assert cases[workers].checkpoint(100)["callbacks"]["NonFiniteGuard"] == reference.checkpoint(100)["callbacks"][
        "NonFiniteGuard"]


def test_judge_cache_and_validations_after_resume_equal_the_uninterrupted_run(runs):
    reference, cases, _, _ = runs
    want = reference.judge_cache()
    assert len(want) >= 2  # judged at steps 50 and 100
    assert cases[0].judge_cache() == want
    assert sorted((cases[0].judge_dir).glob("step*")) and [p.name for p in sorted(cases[0].judge_dir.glob("step*"))] == [
        p.name for p in sorted(reference.judge_dir.glob("step*"))]
    assert cases[0].validated_at() == reference.validated_at() == [25, 50, 75, 100]
    assert cases[0].checkpoint(100)["callbacks"]["JudgeEvalCallback"] == reference.checkpoint(100)["callbacks"][
        "JudgeEvalCallback"]


# ---- longer variants (-m slow) ----------------------------------------------------------------------------
DDP = ["--trainer.devices=2", "--trainer.strategy=lightning.pytorch.strategies.DDPStrategy",
       "--trainer.strategy.timeout=0:01:00"]


@pytest.mark.slow
def test_two_rank_run_killed_at_step_37_resumes_to_identical_state(tmp_path_factory):
    """Both ranks die together (SIGKILL to the process group); each rank's data and losses after the
    resume, and the final weights and optimizer state, equal an uninterrupted two-rank run."""
    shards = shared_shards(tmp_path_factory)
    root = tmp_path_factory.mktemp("fault_resume_ddp")
    reference, killed = (Case(root / name, shards, per_rank=True) for name in ("reference", "killed"))
    kill = {"class_path": "faultcallbacks.SignalAt",
            "init_args": {"step": KILL_STEP, "signal": "SIGKILL", "group": True}}
    runs = [reference.fit("reference", args=DDP), killed.fit("killed", kill, args=DDP)]
    ref_run, killed_run = (r.wait() for r in runs)
    assert ref_run.returncode == 0, tail(ref_run)
    assert killed_run.returncode == -9, tail(killed_run)
    resumed = killed.fit("resumed", args=(*DDP, "--resume", "auto")).wait()
    assert resumed.returncode == 0, tail(resumed)
    want, got = reference.checkpoint(100), killed.checkpoint(100)
    assert max_abs_diff(want["state_dict"], got["state_dict"]) == 0.0
    assert max_abs_diff(want["optimizer_states"], got["optimizer_states"]) == 0.0
    for rank in (0, 1):
        ref_steps, steps = reference.steps(rank), killed.steps(rank)
        assert [(s, steps[s]["loss"], steps[s]["keys"]) for s in range(1, 101)] == [
            (s, ref_steps[s]["loss"], ref_steps[s]["keys"]) for s in range(1, 101)]
    assert reference.steps(0)[1]["keys"] != reference.steps(1)[1]["keys"]  # the ranks really read different data


@pytest.mark.slow
def test_many_kills_in_a_row_still_end_identical(tmp_path_factory):
    reference, reference_done = start_reference(tmp_path_factory)
    case = Case(tmp_path_factory.mktemp("fault_many_kills") / "run", shared_shards(tmp_path_factory))
    args: tuple = ()
    for step in (7, 17, 38, 59, 83):
        kill = {"class_path": "faultcallbacks.SignalAt", "init_args": {"step": step, "signal": "SIGKILL"}}
        run = case.fit(f"kill{step}", kill, args=args).wait()
        assert run.returncode == -9, tail(run)
        args = ("--resume", "auto_or_new")  # a requeued job script: fresh at first, resumed ever after
    run = case.fit("last", args=args).wait()
    assert run.returncode == 0, tail(run)
    reference_done()
    want, got = reference.checkpoint(100), case.checkpoint(100)
    assert max_abs_diff(want["state_dict"], got["state_dict"]) == 0.0
    assert max_abs_diff(want["optimizer_states"], got["optimizer_states"]) == 0.0
    assert [case.steps()[s]["keys"] for s in range(1, 101)] == [reference.steps()[s]["keys"] for s in range(1, 101)]
