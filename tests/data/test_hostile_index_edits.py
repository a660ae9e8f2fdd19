"""Hand-edited index rows (offsets, sizes, durations, a `file://` shard, a `../` member) are each a counted
skip with its reason, for training reads and for `paralm data inspect --verify`; the untouched row reads."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from shardkit import make_corpus

from paralm.data.index import ShardIndex
from paralm.data.pack import pack
from paralm.data.reader import SampleReader, SkipSample

PARALM = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "paralm")

EDITS = {  # row -> (field, new value or a function of the row, the reason reads must give)
    0: ("audio_offset", lambda r: r["audio_offset"] + 7, "missing_member"),
    1: ("audio_size", 10**9, "truncated_shard"),
    2: ("duration", 999.0, "schema"),
    3: ("shard", "file:///etc/passwd", "unsupported_member"),
    4: ("audio_member", "../../etc/passwd", "unsafe_member_name"),
    5: ("json_offset", lambda r: r["audio_offset"], "missing_member"),
}


def test_each_edited_index_row_is_counted_by_reads_and_by_inspect_verify(tmp_path):
    corpus = make_corpus(tmp_path, 7, seed=21, durations=(0.3, 0.5))
    folder = tmp_path / "set"
    pack(corpus.records, corpus.audio_root, folder)
    doc = json.loads((folder / "index.json").read_text())
    for i, (name, value, _) in EDITS.items():
        row = doc["samples"][i]
        row[name] = value(row) if callable(value) else value
    (folder / "index.json").write_text(json.dumps(doc))
    reader, reasons = SampleReader(folder), []
    for row in ShardIndex.load(folder).samples:
        try:
            reader.read(row)
            reasons.append("ok")
        except SkipSample as exc:
            reasons.append(exc.reason)
    assert reasons == [reason for _, _, reason in EDITS.values()] + ["ok"]
    proc = subprocess.run([PARALM, "data", "inspect", str(folder), "--json", "--verify"], capture_output=True,
                          text=True, timeout=120)
    report = json.loads(proc.stdout)
    decode = {k: v for k, v in report["verify"]["decode"].items() if v}
    assert decode == {"missing_member": 2, "truncated_shard": 1, "schema": 1, "unsupported_member": 1,
                      "unsafe_member_name": 1}
    assert report["verify"]["delivered"] == 1 and proc.returncode != 0
