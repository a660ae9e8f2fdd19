"""Config surface of the feed: jsonargparse parses the DataModule, sources validate, per-source losses add up."""

import pytest
import torch
from feedkit import durations, write_source
from jsonargparse import ArgumentParser

from paralm.data.datamodule import MixtureDataModule
from paralm.data.prompts import PromptConfig
from paralm.data.source_metrics import SourceLossAggregator
from paralm.data.sources import SourceSpec, load_sources


def test_datamodule_arguments_parse_from_a_nested_config_with_documented_help(capsys):
    parser = ArgumentParser()
    parser.add_class_arguments(MixtureDataModule, "data")
    cfg = parser.parse_object(
        {
            "data": {
                "train_sources": [{"name": "qa", "path": "/d/qa", "kind": "implicit", "weight": 2}],
                "train_prompt": {"mode": "explicit", "metadata": "pred:ser@oof"},
                "implicit_ratio": 0.3,
                "max_batch_seconds": 120.0,
            }
        }
    )
    dm = parser.instantiate(cfg).data
    assert dm.specs["train"] == [SourceSpec("qa", "/d/qa", "implicit", 2.0)]
    assert dm.train_prompt == PromptConfig("explicit", "pred:ser@oof") and dm.implicit_ratio == 0.3
    assert dm.source_names == ["qa"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    assert "budget of padded audio seconds per batch" in capsys.readouterr().out


def test_source_spec_rejects_unknown_kind_and_negative_weight():
    with pytest.raises(ValueError, match="unknown kind 'synthetic'; valid: general, implicit"):
        SourceSpec("a", "/x", kind="synthetic")
    with pytest.raises(ValueError, match="weight must be >= 0"):
        SourceSpec("a", "/x", weight=-1)


def test_a_clip_with_k_qa_pairs_gives_k_items_and_names_must_be_unique(tmp_path):
    write_source(tmp_path / "a", "a", durations(3), n_qa=3)
    (src,) = load_sources([SourceSpec("a", str(tmp_path / "a"))])
    assert src.items.tolist() == [[r, q] for r in range(3) for q in range(3)]
    with pytest.raises(ValueError, match=r"repeated: \['a'\]"):
        load_sources([SourceSpec("a", str(tmp_path / "a")), SourceSpec("a", str(tmp_path / "a"))])
    with pytest.raises(ValueError, match="no QA items in split 'val'"):
        load_sources([SourceSpec("a", str(tmp_path / "a"), split="val")])


def test_source_loss_aggregator_means_per_source_and_omits_unseen_ones():
    agg = SourceLossAggregator(["a", "b", "c"])
    agg.update(["a", "b", "a"], torch.tensor([1.0, 4.0, 3.0]))
    agg.update(["b"], torch.tensor([6.0]))
    assert agg.compute() == {"a": 2.0, "b": 5.0}
    weighted = SourceLossAggregator(["a"])
    weighted.update(["a", "a"], torch.tensor([10.0, 2.0]), weights=torch.tensor([4.0, 2.0]))
    assert weighted.compute() == {"a": 2.0}
    agg.reset()
    assert agg.compute() == {}


def test_source_loss_aggregator_refuses_unregistered_names():
    with pytest.raises(ValueError, match=r"unknown source\(s\) \['z'\]; registered: \['a'\]"):
        SourceLossAggregator(["a"]).update(["z"], torch.tensor([1.0]))


def test_single_process_aggregator_can_register_names_as_they_come():
    agg = SourceLossAggregator([], grow=True)
    agg.update(["x", "y", "x"], torch.tensor([1.0, 5.0, 3.0]))
    agg.update(["z"], torch.tensor([7.0]))
    assert agg.compute() == {"x": 2.0, "y": 5.0, "z": 7.0} and agg.sources == ["x", "y", "z"]
