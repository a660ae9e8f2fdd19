"""The output journal that makes QA generation resumable: one fsynced JSON line per finished input.

Why a journal beside the API cache: the cache remembers replies, the journal remembers decisions (the
pairs kept after parsing and filtering, or the failure reason). A rerun after a kill reads it and skips
every journaled input without sending anything; a reply that arrived but was not journaled yet is
answered by the cache, so it is not paid for twice either.

The first line is a header holding the run's fingerprint (backend, model, prompt hash, labels, filters,
...). Resuming with a different fingerprint is refused, because mixing pairs from two configurations
would make the output depend on when the run was interrupted. A line torn by a kill (no newline at the
end, or not JSON) is cut off on open; its input simply runs again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class JournalMismatch(ValueError):
    """The journal was written by a run with a different configuration."""


class Journal:
    """Append-only record of finished inputs, keyed by sample key (a later record for a key wins).

    Args:
        path: the JSONL file (created with its header when missing).
        fingerprint: JSON-serialisable description of everything that decides the output.
    """

    def __init__(self, path: str | Path, fingerprint: dict) -> None:
        self.path = Path(path)
        self.fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True))
        self.records: dict[str, dict] = {}
        if self.path.exists() and self.path.stat().st_size > 0:
            self._load()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write_line({"journal": "paralm-generate", "fingerprint": self.fingerprint}, truncate=True)

    def _load(self) -> None:
        raw = self.path.read_bytes()
        good = 0
        for i, line in enumerate(raw.split(b"\n")[:-1]):  # the piece after the last newline is torn or empty
            try:
                doc = json.loads(line.decode("utf-8"))
            except ValueError:
                break
            if i == 0:
                self._check_header(doc)
            else:
                self.records[doc["key"]] = doc
            good += len(line) + 1
        if good == 0:  # not even a header survived
            self._write_line({"journal": "paralm-generate", "fingerprint": self.fingerprint}, truncate=True)
        elif good < len(raw):  # a torn tail from a kill: drop it so appends start on a clean line
            with open(self.path, "r+b") as f:
                f.truncate(good)
                f.flush()
                os.fsync(f.fileno())

    def _check_header(self, doc: dict) -> None:
        old = doc.get("fingerprint")
        if old == self.fingerprint:
            return
        if not isinstance(old, dict):
            raise JournalMismatch(f"{self.path} is not a generation journal (no fingerprint header)")
        changed = sorted(k for k in set(old) | set(self.fingerprint) if old.get(k) != self.fingerprint.get(k))
        raise JournalMismatch(
            f"{self.path} was written with different settings (changed: {', '.join(changed)}); "
            "rerun with the original settings, or use a new --state directory")

    def _write_line(self, doc: dict, truncate: bool = False) -> None:
        with open(self.path, "wb" if truncate else "ab") as f:
            f.write((json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())

    def append(self, record: dict) -> None:
        """Record one finished input (durably: flushed and fsynced before returning)."""
        if "key" not in record:
            raise ValueError("journal records need a 'key'")
        self._write_line(record)
        self.records[record["key"]] = json.loads(json.dumps(record, sort_keys=True))
