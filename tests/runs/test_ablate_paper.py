"""experiments/ablation_paper.yaml runs through the `paralm ablate` code path: its base is the paper's GPU
config (experiments/base.yaml), smoke-tested here on CPU with a tiny model and 2 steps given as an extra
`--fit-config`; `--launcher slurm` writes a requeue-safe job array that depends on a preparation job, and
one array task trains one (training signature, seed) pair and evaluates every row sharing its weights.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from ablatekit import shared_kit

from paralm.runs.ablate import main
from paralm.runs.ablate.config import load_ablation

ROOT = Path(__file__).resolve().parents[2]
TINY_CPU = {  # sizes only: the paper's shape (frozen encoder, projector, LoRA LLM) at toy scale, fp32 on CPU
    "trainer": {"accelerator": "cpu", "devices": 1, "precision": "32-true"},
    "model": {"model": {
        "encoder": {"path": None, "config": {"d_model": 32, "encoder_layers": 1, "encoder_attention_heads": 2,
                                             "encoder_ffn_dim": 64, "num_mel_bins": 80, "max_source_positions": 1500}},
        "projector": {"stack": 4},
        "llm": {"path": None, "tokenizer": "builtin:tiny",
                "config": {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                           "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 1024}}}},
}


def write_paper_files(tmp: Path, shards: Path, cache: Path) -> Path:
    """`tmp/paper.yaml` (the shipped paper ablation pointed at the kit corpus, its own base config kept)
    and `tmp/tiny_cpu.yaml` (the size override); returns tmp."""
    doc = yaml.safe_load((ROOT / "experiments" / "ablation_paper.yaml").read_text())
    doc["model"] = str(ROOT / "experiments" / doc["model"])
    doc["out"] = str(tmp / "out")
    doc["data"] = {"general": str(shards), "folds": 2, "eval_max_items": 24, "cache": str(cache)}
    doc["train"].update(num_workers=0, eval_batch_size=8, generation={"max_new_tokens": 4})
    doc["logging"] = {"wandb": "disabled"}
    (tmp / "paper.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))  # row order names the pairs
    (tmp / "tiny_cpu.yaml").write_text(yaml.safe_dump(TINY_CPU))
    return tmp


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    shards, cache = shared_kit(tmp_path_factory)
    return write_paper_files(tmp_path_factory.mktemp("paper"), shards, cache)


def test_paper_ablation_base_is_the_gpu_fit_config():
    cfg = load_ablation(ROOT / "experiments" / "ablation_paper.yaml")
    base = yaml.safe_load(Path(cfg.base_config).read_text())
    assert Path(cfg.base_config).resolve() == ROOT / "experiments" / "base.yaml"
    assert base["trainer"]["precision"] == "bf16-mixed" and base["trainer"]["accelerator"] == "gpu"
    assert cfg.model.llm.trainable == "lora" and cfg.model.encoder.trainable == "frozen"


def test_slurm_launcher_writes_a_requeue_safe_job_array_after_a_preparation_job(paper):
    assert main([str(paper / "paper.yaml"), "--launcher", "slurm", "--steps", "2", "--devices", "1"]) == 0
    folder = paper / "out" / "slurm"
    array = (folder / "pairs.sbatch").read_text()
    options = dict(re.findall(r"^#SBATCH --([\w-]+)=?(\S*)$", array, re.M))
    assert options["array"] == "0-14"  # 5 training signatures (oracle shares explicit's weights) x 3 seeds
    assert "requeue" in options and options["gres"] == "gpu:1"
    command = array.strip().splitlines()[-1]
    assert "--pair-index ${SLURM_ARRAY_TASK_ID}" in command and "--steps 2" in command
    assert command.count("--launcher") == 1 and "--launcher local" in command  # the task trains its own pair
    assert command.split()[1:3] == ["ablate", str(paper / "paper.yaml")]
    assert "--prepare-only" in (folder / "prepare.sbatch").read_text()
    submit = (folder / "submit.sh").read_text()
    assert "--dependency=afterok:${prep}" in submit and str(folder / "pairs.sbatch") in submit
    assert not (paper / "out" / "results").exists()  # writing the scripts trains nothing


def test_one_array_task_trains_its_pair_and_evaluates_every_row_sharing_the_weights(paper, capsys):
    args = [str(paper / "paper.yaml"), "--fit-config", str(paper / "tiny_cpu.yaml"), "--steps", "2"]
    assert main([*args, "--pair-index", "1"]) == 0  # pair 1: explicit (and its oracle), seed 0
    results = paper / "out" / "results"
    assert sorted(p.name for p in results.iterdir()) == ["explicit", "oracle"]
    config = yaml.safe_load((paper / "out" / "runs" / "explicit-seed0" / "config.yaml").read_text())
    assert config["trainer"]["precision"] == "32-true" and config["trainer"]["max_steps"] == 2
    assert config["model"]["model"]["llm"]["trainable"] == "lora"  # the paper's shape, tiny sizes
    assert config["model"]["optim"]["lora_lr"] == 2.0e-4  # the ablation's shared schedule
    assert main([*args, "--report-only"]) == 0
    report = (paper / "out" / "report" / "report.md").read_text()
    assert "| explicit |" in report and "| oracle (ORACLE) |" in report
