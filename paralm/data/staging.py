"""Publish a shard set in one rename: write into a fresh staging folder, then rename it onto the output.

Why: a writer killed half way (OOM killer, scheduler, Ctrl-C) must never leave complete-but-unindexed
shards where a later reader looks. Streaming mode globs a folder's `*.tar`, so shards of a killed pack
mixed into the next pack's data. Every stage that writes a shard set therefore writes into
`.{OUT}.staging-{PID}` beside `OUT` and renames it to `OUT` when shards, index and reports are complete:
`OUT` either does not exist or holds one finished set. What a killed run leaves behind is hidden
(`.NAME.staging-PID` folders, `.NAME.partial-PID` / `.NAME.tmp-PID` files), readers skip such names
(`is_leftover`), and `--overwrite` removes them and says how many (`remove_leftovers`).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from paralm.atomic_files import replace_durably
from paralm.fault.exits import UserError

# hidden names a killed writer leaves: staging folders, tar shards and temp files of atomic writes
_LEFTOVER = re.compile(r"\..+\.(staging|partial|tmp|replaced)-\d+")
# what a finished shard set folder may hold, so `--overwrite` never deletes a user's own files
_SET_FILE = re.compile(r"index\.json|.+\.tar|pack_skipped\.jsonl|stage_.+\.json(l)?|failures\.jsonl|generate_report\.json")


def is_leftover(name: str) -> bool:
    """True for a name a killed writer leaves behind (never part of a published set)."""
    return bool(_LEFTOVER.fullmatch(name))


def leftovers(out: Path) -> list[Path]:
    """Leftovers of unfinished runs inside `out` and staging folders of `out` beside it, sorted."""
    out = Path(out).resolve()  # `--out .` has no name of its own
    found = [p for p in out.iterdir() if is_leftover(p.name)] if out.is_dir() else []
    if out.parent.is_dir():
        found += [p for p in out.parent.glob(f".{out.name}.staging-*") if is_leftover(p.name)]
    return sorted(found)


def remove_leftovers(out: Path) -> int:
    """Delete `leftovers(out)`; returns how many were removed."""
    found = leftovers(out)
    for path in found:
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)
    return len(found)


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse (UserError, exit 2) an output folder this run may not replace; nothing is changed here.

    Without `overwrite` the folder must not exist or be empty; with it, it may hold only a shard set's
    own files and leftovers (a folder of other files is never deleted by a pack).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file, not a folder; choose a folder for the shard set")
    names = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not names:
        return
    if not overwrite:
        if "index.json" in names:
            raise UserError(f"{out} already holds a shard set; pass --overwrite to replace it or use a new folder")
        hidden = [n for n in names if is_leftover(n)]
        if len(hidden) == len(names):
            raise UserError(f"{out} holds {len(hidden)} leftover file(s) of an unfinished run (e.g. {hidden[0]}); "
                            "pass --overwrite to remove them")
        raise UserError(f"{out} is not empty (holds {names[0]!r}); choose an empty or new folder")
    foreign = [n for n in names if not (is_leftover(n) or _SET_FILE.fullmatch(n))]
    if foreign:
        raise UserError(f"{out} holds {foreign[0]!r}, which is not part of a shard set; --overwrite only "
                        "replaces a shard set: move that file or choose another folder")


def new_staging(out: Path) -> Path:
    """A fresh, empty staging folder beside `out` (`.{name}.staging-{pid}`)."""
    out = Path(out).resolve()  # `--out .` has no name of its own
    staging = out.parent / f".{out.name}.staging-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def publish(staging: Path, out: Path) -> int:
    """Rename the finished `staging` folder to `out`; returns how many old entries of `out` were removed.

    An empty `out` is replaced directly. An `out` holding a previous set (the caller checked it with
    `check_out_dir(out, overwrite=True)`) is renamed aside first, so `out` never holds a mix of both sets,
    then deleted.
    """
    staging, out = Path(staging), Path(out).resolve()
    old_entries = 0
    if out.is_dir() and any(out.iterdir()):
        old_entries = sum(1 for _ in out.iterdir())
        aside = out.parent / f".{out.name}.replaced-{os.getpid()}"
        replace_durably(out, aside)
        replace_durably(staging, out)
        shutil.rmtree(aside, ignore_errors=True)
        return old_entries
    if out.is_dir():
        out.rmdir()
    replace_durably(staging, out)
    return old_entries
