"""`paralm ablate` trains every (row, seed) as `paralm fit` itself, and scores the permuted-metadata control.

- No Trainer is constructed anywhere in the package but by the one LightningCLI (paralm/lightning_cli.py).
- A row of `paralm ablate` and `paralm fit --config base --config row_overlay --seed_everything S` (typed as
  the ablation prints it) give identical weights, and `paralm predict` on those weights the same answers.
- The permuted-metadata control: a model that copies the metadata block drops to the chance level computed
  from the permutation; a model that ignores the block does not move (the drop's CI spans 0).
The kit corpus and its derived data are made once per test session (ablatekit.shared_kit).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from ablatekit import kit_ablation, shared_kit, write_ablation
from fitprobe import run_paralm

from paralm.data.loader import AudioSwapReader
from paralm.data.prompts import lookup_metadata
from paralm.formats.predictions import read_predictions
from paralm.runs.ablate import main
from paralm.runs.ablate.config import cache_root, parse_ablation
from paralm.runs.ablate.fit import trained_step
from paralm.runs.ablate.prepare import prepare
from paralm.runs.ablate.report import write_report
from paralm.runs.ablate.run import PERMUTE_OFFSET, _evaluate, build_datamodule

ROOT = Path(__file__).resolve().parents[2]
EXPLICIT = {"sources": {"general": 1.0},
            "train_prompt": {"mode": "explicit", "metadata": "pred:acoustic_fit@oof"},
            "eval_prompt": {"mode": "explicit", "metadata": "pred:acoustic_fit"}}
TRAIN = {"steps": 4, "batch_size": 4, "eval_batch_size": 4, "instruction": "{audio} {question}",
         "optim": {"full_lr": 1e-3, "projector_lr": 1e-3, "warmup_steps": 0}, "generation": {"max_new_tokens": 6}}


def test_no_trainer_is_constructed_outside_the_shared_cli():
    pattern = re.compile(r"(?<![A-Za-z_])(pl\.|lightning\.pytorch\.)?Trainer\(")
    found = [f"{p.relative_to(ROOT)}:{n}" for folder in ("paralm", "callbacks") for p in (ROOT / folder).rglob("*.py")
             for n, line in enumerate(p.read_text().splitlines(), 1)
             if pattern.search(line.split("#")[0]) and "BpeTrainer" not in line]
    assert found == []


def _weights(ckpt: Path) -> dict:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def ablated(tmp_path_factory):
    """One explicit row trained and evaluated by `paralm ablate` (every test item, no subsample)."""
    shards, cache = shared_kit(tmp_path_factory)
    tmp = tmp_path_factory.mktemp("ablate_fit")
    doc = kit_ablation(tmp, shards, rows={"baseline": {"sources": {"general": 1.0}}, "explicit": EXPLICIT},
                       cache=cache, train=TRAIN)
    doc["data"]["eval_max_items"] = None
    path = write_ablation(tmp, doc)
    assert main([str(path), "--rows", "explicit"]) == 0
    return tmp, parse_ablation(doc)


def test_ablation_row_equals_paralm_fit_with_its_overlay_weights(ablated):
    tmp, cfg = ablated
    out = Path(cfg.out)
    base, overlay = out / "overlays" / "base.yaml", out / "overlays" / "explicit.yaml"
    fit = run_paralm(["fit", "--config", str(base), "--config", str(overlay), "--seed_everything", "0",
                      "--trainer.default_root_dir", str(tmp / "by_hand")])
    assert fit.returncode == 0, fit.stderr[-2000:]
    by_hand = tmp / "by_hand" / "base+explicit" / "checkpoints" / "last.ckpt"
    step, ablation_ckpt = trained_step(cfg, "explicit", 0)
    assert step == 4
    mine, theirs = _weights(ablation_ckpt), _weights(by_hand)
    assert mine.keys() == theirs.keys() and len(mine) > 0
    assert max((mine[k] - theirs[k]).abs().max().item() for k in mine) == 0.0


@pytest.mark.slow
def test_paralm_predict_on_the_fit_weights_answers_as_the_ablation_did(ablated):
    tmp, cfg = ablated
    out = Path(cfg.out)
    base, overlay = out / "overlays" / "base.yaml", out / "overlays" / "explicit.yaml"
    _, by_hand = trained_step(cfg, "explicit", 0)  # the ablation's checkpoint: equal to `paralm fit`'s (above)
    pred = run_paralm(["predict", "--config", str(base), "--config", str(overlay), "--ckpt_path", str(by_hand),
                       "--trainer.default_root_dir", str(tmp / "predict")])
    assert pred.returncode == 0, pred.stderr[-2000:]
    predicted = read_predictions(tmp / "predict" / "base+explicit" / "predictions" / "test-step4.jsonl")
    ablation = read_predictions(out / "results" / "explicit" / "seed0" / "predictions.jsonl")
    assert len(ablation) == 24
    assert {(r.key, r.question): r.answer for r in predicted} == {(r.key, r.question): r.answer for r in ablation}


def test_ablation_run_folder_holds_the_resolved_config_with_the_instruction_used(ablated):
    tmp, cfg = ablated
    config = (Path(cfg.out) / "runs" / "explicit-seed0" / "config.yaml").read_text()
    assert "instruction: '{audio} {question}'" in config and "run_group: kit" in config
    assert "seed_everything: 0" in config


# ---- the permuted-metadata control, with test doubles at the prediction level --------------------------
class CopyTheBlock:
    """Answers with the emotion the metadata block shows (what a model that only reads the block does)."""

    device = torch.device("cpu")

    def __init__(self, source: str) -> None:
        self.source = source

    def generate(self, batch) -> list[str]:
        return [f"The speaker sounds {(lookup_metadata(m, self.source) or {}).get('emotion')}." for m in batch.meta]


class IgnoreTheBlock(CopyTheBlock):
    """Answers from the item itself (its gold label on about half of the items), never from the block."""

    def generate(self, batch) -> list[str]:
        import zlib

        return [f"The speaker sounds {m['labels']['gold']['emotion'] if zlib.crc32(f'{k}{q}'.encode()) % 2 else 'calm'}."
                for k, q, m in zip(batch.keys, batch.questions, batch.meta, strict=True)]


@pytest.fixture(scope="module")
def control_setup(tmp_path_factory):
    shards, cache = shared_kit(tmp_path_factory)
    tmp = tmp_path_factory.mktemp("permuted")
    doc = kit_ablation(tmp, shards, rows={"baseline": {"sources": {"general": 1.0}}, "explicit": EXPLICIT},
                       cache=cache, train={**TRAIN, "feature_cache": False}, n_boot=300)
    doc["data"]["eval_max_items"] = None
    cfg = parse_ablation(doc)
    paths = prepare(cfg.data, cache_root(cfg))
    from paralm.lit_module import SpeechLMModule

    module = SpeechLMModule(cfg.model)
    dm = build_datamodule(cfg, cfg.rows["explicit"], 0, paths)
    dm.attach(module.tokenizer, module.audio_token_spec)
    return cfg, dm


def _chance_from_permutation(dm) -> float:
    """Share of DP items whose borrowed cue (the donor clip's annotator emotion) equals their gold emotion."""
    rows = dm.sources("test")[0].rows
    partner = AudioSwapReader(None, rows, 0 + PERMUTE_OFFSET).partner
    labels = {}
    for batch in dm.generation_dataloader("test"):
        for key, qtype, meta in zip(batch.keys, batch.question_types, batch.meta, strict=True):
            labels[key] = meta["labels"]
            assert qtype != "DP" or meta["labels"]["gold"]["emotion"]
    hits = [labels[partner[k].key]["pred"]["acoustic_fit"]["emotion"] == labels[k]["gold"]["emotion"] for k in labels]
    return sum(hits) / len(hits)  # one DP question per kit clip


def _permuted(cfg, double) -> tuple[dict, dict]:
    report = write_report(cfg)
    rec = {(r["condition"], r["metric"]): r for r in report["records"]
           if r["row"] == "explicit" and r["subset"] == "all"}
    return report["permuted_drop"]["explicit"]["dp_acc"], rec


def test_copying_the_metadata_block_drops_to_chance_under_permutation(control_setup):
    cfg, dm = control_setup
    _evaluate(cfg, "explicit", 0, CopyTheBlock("pred:acoustic_fit"), dm, trained_by="explicit")
    drop, rec = _permuted(cfg, CopyTheBlock)
    chance = _chance_from_permutation(dm)
    folder = Path(cfg.out) / "results" / "explicit" / "seed0"
    assert {p.type for p in read_predictions(folder / "predictions.jsonl")} == {"C", "CP", "DP"}
    assert {p.type for p in read_predictions(folder / "predictions_permuted.jsonl")} == {"CP", "DP"}
    assert abs(rec[("permuted", "dp_acc")]["estimate"] - chance) <= 0.02
    assert drop["chance"] == pytest.approx(chance)
    assert rec[("normal", "dp_acc")]["estimate"] > chance + 0.2  # the annotator's cues are mostly right
    assert drop["drop"]["estimate"] == pytest.approx(rec[("normal", "dp_acc")]["estimate"] - chance, abs=0.02)
    assert drop["drop"]["estimate"] > 0.2


def test_ignoring_the_metadata_block_gives_a_drop_whose_interval_spans_zero(control_setup):
    cfg, dm = control_setup
    _evaluate(cfg, "explicit", 0, IgnoreTheBlock("pred:acoustic_fit"), dm, trained_by="explicit")
    drop, rec = _permuted(cfg, IgnoreTheBlock)
    assert 0.0 < rec[("normal", "dp_acc")]["estimate"] < 1.0
    assert drop["drop"]["ci_low"] <= 0.0 <= drop["drop"]["ci_high"]


# ---- kill -9 during a row's training, then rerun -------------------------------------------------------
def _kill9_ablation(tmp: Path, shards: Path, cache: Path) -> tuple[Path, object]:
    doc = kit_ablation(tmp, shards, rows={"baseline": {"sources": {"general": 1.0}}}, cache=cache,
                       train={**TRAIN, "steps": 60, "checkpoint_every": 4}, headline=["baseline", "baseline"])
    return write_ablation(tmp, doc), parse_ablation(doc)


@pytest.mark.slow
def test_kill_9_during_a_row_then_rerun_resumes_from_its_checkpoint_with_uninterrupted_weights(tmp_path_factory):
    import os
    import signal
    import subprocess
    import time

    from fitprobe import PARALM

    shards, cache = shared_kit(tmp_path_factory)
    tmp = tmp_path_factory.mktemp("kill9")
    path, cfg = _kill9_ablation(tmp, shards, cache)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(tmp / "first.log", "w") as log:
        proc = subprocess.Popen([str(PARALM), "ablate", str(path)], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 600
        try:
            while trained_step(cfg, "baseline", 0)[0] < 8 and proc.poll() is None and time.time() < deadline:
                time.sleep(0.02)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    killed_at, _ = trained_step(cfg, "baseline", 0)
    assert 8 <= killed_at < 60, (tmp / "first.log").read_text()[-2000:]

    rerun = run_paralm(["ablate", str(path)], timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    said = re.search(r"baseline-seed0 resumes from step (\d+)", rerun.stdout)
    assert said is not None and int(said.group(1)) >= killed_at, rerun.stdout[-2000:]

    clean_tmp = tmp_path_factory.mktemp("kill9_clean")
    clean_path, clean_cfg = _kill9_ablation(clean_tmp, shards, cache)
    assert main([str(clean_path)]) == 0
    resumed, clean = (_weights(trained_step(c, "baseline", 0)[1]) for c in (cfg, clean_cfg))
    assert max((resumed[k] - clean[k]).abs().max().item() for k in clean) == 0.0
