"""The one place files are replaced durably: temp file beside the target, fsync, rename, fsync the folder.

Why one module: a reader (a resumed run, `--resume auto`, the next pipeline stage) must see either the
old file or the complete new one, never a prefix, and after a power loss the rename itself must be on
disk. Every writer in paralm that replaces a file or a finished folder goes through here, so they all
give the same guarantee.

Temp names are hidden and carry the writer's pid (`.NAME.tmp-PID`): readers skip them and
`paralm.data.staging.is_leftover` / `paralm.fault.resume` recognise what a killed writer left behind.
Standard library only, so torch-free packages (judge, api, formats) and data may all import it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def temp_name(path: str | os.PathLike, tag: str = "tmp") -> Path:
    """The hidden sibling a writer fills before the rename: `.NAME.<tag>-PID`."""
    path = Path(path)
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}")


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename inside `folder` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Rename the finished file or folder `src` onto `dst` in one step, then fsync the folder(s)."""
    src, dst = Path(src), Path(dst)
    os.replace(src, dst)
    fsync_dir(dst.parent)
    if src.parent.resolve() != dst.parent.resolve():
        fsync_dir(src.parent)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temp file for writing; on a clean exit it is fsynced and renamed onto `path`.

    On an exception the temp file is removed and `path` keeps its old content.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        with open(tmp, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        replace_durably(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes so that `path` holds either its old content or all of `data`."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """`atomic_write_bytes` for text."""
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Fill a hidden temp folder beside `path`; on a clean exit it replaces `path` (an old folder is removed).

    A reader sees the old folder or the finished new one (a converted model, a prepared data set), never a
    half-written one; on an exception the temp folder is removed and `path` is left as it was.
    """
    import shutil
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp.chmod(0o755)  # mkdtemp makes 0700; a shared models/ folder must be readable
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        replace_durably(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
