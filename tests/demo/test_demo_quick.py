"""`paralm demo` end to end on a tiny corpus: runs the chosen rows, prints the table and the report paths."""

import json
from pathlib import Path

import pytest
from ablatekit import kit_ablation, shared_kit, write_ablation

from paralm.demo import main


def test_demo_prints_table_and_report_paths(tmp_path, tmp_path_factory, capsys):
    """With --jobs 2, as `make demo` runs (the file says jobs: 2): each pair is a process given the demo's choices."""
    shards, cache = shared_kit(tmp_path_factory)
    rows = {"baseline": {"sources": {"general": 1.0}}, "implicit": {"sources": {"general": 1.0, "implicit": 1.0}},
            "control": {"sources": {"general": 1.0, "control": 1.0}}}
    path = write_ablation(tmp_path, kit_ablation(tmp_path, shards, rows=rows, headline=["implicit", "control"],
                                                 seeds=[0, 1], cache=cache))
    assert main(["--config", str(path), "--rows", "implicit,control", "--seeds", "1", "--steps", "2",
                 "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "| implicit |" in out and "| control |" in out and "| baseline |" not in out
    assert f"report: {tmp_path / 'out' / 'report' / 'report.md'}" in out
    assert not (tmp_path / "out" / "results" / "control" / "seed1").exists()
    pairs = [json.loads(line) for line in (tmp_path / "out" / "logs" / "pairs.jsonl").read_text().splitlines()]
    assert sorted(p["pair"] for p in pairs) == ["control-seed0", "implicit-seed0"]
    for p in pairs:  # the pair process repeated the demo's narrowing choices as `paralm ablate` options
        command = Path(p["log"]).read_text().splitlines()[1]
        assert "--rows implicit,control --seeds 1 --steps 2" in command and "--jobs 1 --pair-index" in command
        assert "  max_steps: 2\n" in (tmp_path / "out" / "runs" / p["pair"] / "config.yaml").read_text()


def test_demo_without_corpus_says_how_to_build_it(tmp_path):
    path = write_ablation(tmp_path, kit_ablation(tmp_path, tmp_path / "missing"))
    with pytest.raises(SystemExit, match="data/demo/build.py"):
        main(["--config", str(path)])
    assert not Path(tmp_path / "out" / "results").exists()
