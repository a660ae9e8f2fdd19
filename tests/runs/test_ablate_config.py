"""The ablation file validator: shipped files parse; every mistake names the key and the valid choices."""

from pathlib import Path

import pytest
from ablatekit import kit_ablation

from paralm.runs.ablate.config import load_ablation, parse_ablation, select

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["ablation_demo.yaml", "ablation_paper.yaml"])
def test_shipped_ablation_files_parse_with_all_rows(name):
    cfg = load_ablation(ROOT / "experiments" / name)
    assert {"baseline", "explicit", "implicit", "implicit_explicit", "control", "oracle"} <= set(cfg.rows)
    assert len(cfg.seeds) >= 3
    assert cfg.rows["oracle"].is_oracle and not cfg.rows["explicit"].is_oracle
    assert cfg.rows["explicit"].train_prompt.metadata.endswith("@oof")


def test_demo_model_is_small_and_trained_fully():
    cfg = load_ablation(ROOT / "experiments" / "ablation_demo.yaml")
    assert cfg.model.llm.trainable == "full"
    llm = cfg.model.llm.config
    per_layer = 4 * llm["hidden_size"] ** 2 + 3 * llm["hidden_size"] * llm["intermediate_size"]
    assert per_layer * llm["num_hidden_layers"] <= 5_000_000


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(epochs=3), "ablation: unknown key(s) ['epochs']"),
    (lambda d: d["rows"]["baseline"].update(weight=1), "rows.baseline: unknown key(s) ['weight']"),
    (lambda d: d["rows"]["baseline"].update(sources={"genral": 1.0}), "unknown source(s) ['genral']"),
    (lambda d: d["rows"]["baseline"].update(sources={"general": 0}), "weights must be positive"),
    (lambda d: d["rows"]["baseline"].update(train_prompt={"mode": "loud"}), "unknown prompt mode 'loud'"),
    (lambda d: d["rows"]["baseline"].update(train_prompt={"modes": "plain"}), "unknown key(s) ['modes']"),
    (lambda d: d.update(baseline="nope"), "baseline: unknown row 'nope'"),
    (lambda d: d.update(headline=["explicit", "ghost"]), "headline: unknown row 'ghost'"),
    (lambda d: d["train"].update(stepz=3), "train: unknown key(s) ['stepz']"),
    (lambda d: d["logging"].update(wandb="sometimes"), "logging.wandb: unknown mode 'sometimes'"),
    (lambda d: d.update(seeds=[1, 1]), "seeds: give at least one seed, each once"),
    (lambda d: d["rows"].update({"Bad-Name": {"sources": {"general": 1}}}), "row name 'Bad-Name'"),
    (lambda d: d.pop("name"), "missing required key 'name'"),
    (lambda d: d.update(launcher="k8s"), "launcher: unknown launcher 'k8s'; valid: local, fabric, torchrun, slurm"),
    (lambda d: d.update(fit_configs=["no/such.yaml"]), "fit_configs: no such file(s) ['no/such.yaml']"),
])
def test_validator_names_what_is_wrong(tmp_path, mutate, message):
    doc = kit_ablation(tmp_path, tmp_path / "shards")
    mutate(doc)
    with pytest.raises(ValueError) as err:
        parse_ablation(doc)
    assert message in str(err.value)


def test_select_narrows_rows_and_seeds_and_rejects_unknown_rows(tmp_path):
    cfg = parse_ablation(kit_ablation(tmp_path, tmp_path / "shards", seeds=[3, 4, 5]))
    small = select(cfg, rows=["explicit"], seeds=2, steps=7)
    assert list(small.rows) == ["explicit"] and small.seeds == [3, 4] and small.train.steps == 7
    assert cfg.train.steps == 4 and len(cfg.rows) == 2  # the original is untouched
    with pytest.raises(ValueError, match="unknown row"):
        select(cfg, rows=["implicit"])


def test_select_sets_launcher_devices_and_extra_fit_configs(tmp_path):
    cfg = parse_ablation(kit_ablation(tmp_path, tmp_path / "shards"))
    extra = tmp_path / "cluster.yaml"
    extra.write_text("trainer: {num_nodes: 1}\n")
    chosen = select(cfg, launcher="torchrun", devices=4, fit_configs=[str(extra)])
    assert (chosen.launcher, chosen.devices, chosen.fit_configs) == ("torchrun", 4, [str(extra)])
    assert (cfg.launcher, cfg.devices, cfg.fit_configs) == ("local", 1, [])
    with pytest.raises(ValueError, match="devices must be >= 1"):
        select(cfg, devices=-1)


def test_judge_client_is_a_nested_client_config_and_the_flat_spelling_still_reads(tmp_path):
    from paralm.api.chat_types import ClientConfig

    url = "http://127.0.0.1:8000/v1"
    nested = parse_ablation({**kit_ablation(tmp_path, tmp_path / "shards"),
                             "judge": {"client": {"base_url": url, "model": "j", "timeout_s": 9.0}}})
    flat = parse_ablation({**kit_ablation(tmp_path, tmp_path / "shards"),
                           "judge": {"base_url": url, "model": "j", "timeout_s": 9.0}})
    assert nested.judge.client == flat.judge.client == ClientConfig(base_url=url, model="j", timeout_s=9.0)
    assert nested.judge.client.concurrency == 8 and nested.judge.client.api_key_env == "OPENAI_API_KEY"
    with pytest.raises(ValueError, match=r"judge: unknown key\(s\) \['rubrik'\]"):
        parse_ablation({**kit_ablation(tmp_path, tmp_path / "shards"),
                        "judge": {"client": {"base_url": url, "model": "j"}, "rubrik": "x"}})
    with pytest.raises(ValueError, match="timeout_s"):
        parse_ablation({**kit_ablation(tmp_path, tmp_path / "shards"),
                        "judge": {"client": {"base_url": url, "model": "j", "timeout_s": 0}}})


def test_kit_ablation_parses(tmp_path):
    cfg = parse_ablation(kit_ablation(tmp_path, tmp_path / "shards"))
    assert list(cfg.rows) == ["baseline", "explicit"]
