"""Long commands say how far they are: creation stages and `data generate` print samples done / total on
stderr (plain lines when stderr is not a terminal), keeping stdout for their summaries."""

from __future__ import annotations

from genkit import clip_metas, write_clips

from paralm.creation.generate import GenerateConfig, generate
from paralm.creation.stage import run_stage


def test_a_creation_stage_reports_samples_done_of_total_on_stderr(tmp_path, capsys):
    src = write_clips(tmp_path / "src", clip_metas(3))
    run_stage(src, tmp_path / "out", "mystage", lambda batch, counts: batch, record={"v": 1}, sample_rate=None)
    captured = capsys.readouterr()
    assert "mystage: 3/3 samples" in captured.err and "(done)" in captured.err
    assert "samples/s" not in captured.out and "written" in captured.out  # stdout keeps only the summary


def test_generate_reports_clips_done_of_total_and_quiet_silences_it(tmp_path, capsys):
    src = write_clips(tmp_path / "src", clip_metas(4))
    generate(src, tmp_path / "out", GenerateConfig(backend="template"))
    assert "generate: 4/4 clips" in capsys.readouterr().err
    generate(src, tmp_path / "out2", GenerateConfig(backend="template"), quiet=True)
    assert capsys.readouterr().err == ""
