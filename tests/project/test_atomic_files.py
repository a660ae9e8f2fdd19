"""One module replaces files durably (paralm/atomic_files.py): every writer gets temp + fsync + rename +
fsync of the folder, and a failed write leaves the old content and no temp file."""

import os
import re
from pathlib import Path

import pytest

from paralm import atomic_files
from paralm.atomic_files import atomic_open, atomic_write_text, temp_name
from paralm.data.skips import SkipCounter
from paralm.data.staging import is_leftover

ROOT = Path(__file__).resolve().parents[2]
# os.replace / os.rename, and Path.replace / Path.rename (one argument; str.replace takes two, and
# dataclasses.replace is not a rename)
_RENAME = re.compile(r"\bos\.(?:replace|rename)\(|(?<!dataclasses)\.(?:replace|rename)\(\s*[^,()\"']+\)")


def test_os_replace_appears_only_in_the_atomic_files_module():
    found = set()
    for folder in ("paralm", "callbacks"):
        for path in (ROOT / folder).rglob("*.py"):
            if _RENAME.search(path.read_text(encoding="utf-8")):
                found.add(path.relative_to(ROOT).as_posix())
    assert found == {"paralm/atomic_files.py"}


def test_failed_write_keeps_the_old_content_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("old\n")
    with pytest.raises(RuntimeError, match="disk full"), atomic_open(target, "w", encoding="utf-8") as f:
        f.write("half of the new")
        raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_temp_name_is_a_leftover_that_readers_skip(tmp_path):
    name = temp_name(tmp_path / "index.json").name
    assert name == f".index.json.tmp-{os.getpid()}"
    assert is_leftover(name) and is_leftover(temp_name(tmp_path / "a.tar", "partial").name)


def _count_fsyncs(monkeypatch) -> list[str]:
    kinds: list[str] = []
    real = os.fsync

    def counting(fd):
        kinds.append("dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file")
        return real(fd)

    monkeypatch.setattr(atomic_files.os, "fsync", counting)
    return kinds


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to tell files from folders")
def test_writers_fsync_the_file_and_its_folder(tmp_path, monkeypatch):
    kinds = _count_fsyncs(monkeypatch)
    atomic_write_text(tmp_path / "report.md", "# report\n")
    assert kinds == ["file", "dir"]
    kinds.clear()
    skips = SkipCounter()  # its skipped.jsonl was written without any fsync before the one module
    skips.write_skipped(tmp_path / "skipped.jsonl")
    assert kinds == ["file", "dir"]
    assert (tmp_path / "skipped.jsonl").read_text() == ""


def test_a_folder_written_atomically_replaces_the_old_one_only_when_finished(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("old")
    with pytest.raises(RuntimeError, match="killed"), atomic_files.atomic_folder(target) as tmp:
        (tmp / "weights").write_text("half")
        raise RuntimeError("killed")
    assert (target / "weights").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    with atomic_files.atomic_folder(target) as tmp:
        (tmp / "weights").write_text("new")
    assert [p.name for p in target.iterdir()] == ["weights"] and (target / "weights").read_text() == "new"
    assert oct(target.stat().st_mode & 0o777) == "0o755" and sorted(p.name for p in tmp_path.iterdir()) == ["model"]
