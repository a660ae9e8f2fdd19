"""Crash-safe SQLite cache of finished chat completions.

Long generation and judging runs get killed (pre-emption, OOM, Ctrl-C). Each finished result is one
row committed on its own in a WAL-mode database, so a SIGKILL loses at most the requests that were in
flight, a rerun sends nothing for rows already present, and a reader never sees half a row.

The key is the sha256 of canonical JSON over everything that decides the answer: model, messages,
sampling parameters, the caller's input hash and the sample index. Nothing secret is stored: no API
key, no headers, only the reply text, token counts, finish reason, model and time.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    finish_reason TEXT,
    tag TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL
)
"""


def canonical_json(obj: Any) -> str:
    """One spelling per value: sorted keys, no spaces, unicode kept."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(fields: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of `fields`."""
    return hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedReply:
    """A stored completion.

    Args:
        text: the assistant message text.
        prompt_tokens: prompt tokens the server billed for it.
        completion_tokens: completion tokens the server billed for it.
        finish_reason: the server's finish reason, if any.
        model: the model that answered.
        created: unix time the row was written.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    model: str
    created: float = 0.0


class ResultCache:
    """Key -> CachedReply in one SQLite file; safe to share between threads and asyncio tasks.

    Args:
        path: database file; parent folders are created.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed row survives a killed process (only power loss can drop it).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def get(self, key: str) -> CachedReply | None:
        with self._lock:
            row = self._db.execute(
                "SELECT text, prompt_tokens, completion_tokens, finish_reason, model, created "
                "FROM completions WHERE key = ?",
                (key,),
            ).fetchone()
        return None if row is None else CachedReply(*row)

    def put(self, key: str, reply: CachedReply, tag: str = "") -> None:
        """Store one result and commit it at once (one row, one transaction)."""
        created = reply.created or time.time()
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO completions "
                "(key, model, text, prompt_tokens, completion_tokens, finish_reason, tag, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, reply.model, reply.text, reply.prompt_tokens, reply.completion_tokens,
                 reply.finish_reason, tag, created),
            )

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def keys(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT key FROM completions ORDER BY created")]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ResultCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultCache(path={str(self.path)!r})"
