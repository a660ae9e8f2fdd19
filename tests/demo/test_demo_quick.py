"""`paralm demo` end to end on a tiny corpus: runs the chosen rows, prints the table and the report paths."""

from pathlib import Path

import pytest
from ablatekit import kit_ablation, shared_kit, write_ablation

from paralm.demo import main


def test_demo_prints_table_and_report_paths(tmp_path, tmp_path_factory, capsys):
    shards, cache = shared_kit(tmp_path_factory)
    rows = {"baseline": {"sources": {"general": 1.0}}, "implicit": {"sources": {"general": 1.0, "implicit": 1.0}},
            "control": {"sources": {"general": 1.0, "control": 1.0}}}
    path = write_ablation(tmp_path, kit_ablation(tmp_path, shards, rows=rows, headline=["implicit", "control"],
                                                 seeds=[0, 1], cache=cache))
    assert main(["--config", str(path), "--rows", "implicit,control", "--seeds", "1", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "| implicit |" in out and "| control |" in out and "| baseline |" not in out
    assert f"report: {tmp_path / 'out' / 'report' / 'report.md'}" in out
    assert not (tmp_path / "out" / "results" / "control" / "seed1").exists()


def test_demo_without_corpus_says_how_to_build_it(tmp_path):
    path = write_ablation(tmp_path, kit_ablation(tmp_path, tmp_path / "missing"))
    with pytest.raises(SystemExit, match="data/demo/build.py"):
        main(["--config", str(path)])
    assert not Path(tmp_path / "out" / "results").exists()
