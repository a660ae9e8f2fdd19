"""Byte-level tar: write members with known data offsets, read them back sequentially or by offset.

Why not `tarfile` alone: the shard index records where each member's data starts so the reader can
seek straight to it, and the sequential scanner must tell a clean end of archive from a shard cut
short (tarfile treats both as "no more members"). The format is plain POSIX ustar, readable by any
tar tool and by webdataset; long names use pax or GNU headers, which the reader understands.
Member names follow webdataset's convention (key = name up to the first dot of the basename) and
are checked here for the two ways a name itself can be hostile: escaping paths and pickle payloads.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from paralm.atomic_files import replace_durably, temp_name

BLOCK = 512
AUDIO_EXTS: tuple[str, ...] = ("flac", "ogg", "opus", "wav", "mp3")
UNSUPPORTED_EXTS: tuple[str, ...] = ("pyd", "pickle", "pkl")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PAX_TYPES = (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE)
_GLOBAL_TYPES = (tarfile.XGLTYPE,)
_LONGNAME_TYPES = (tarfile.GNUTYPE_LONGNAME,)
_SKIPPED_META_TYPES = (tarfile.GNUTYPE_LONGLINK,)


# --- member names ------------------------------------------------------------------------------
def member_problem(name: str) -> str | None:
    """ "unsafe_member_name", "unsupported_member" or None for a tar member name.

    Unsafe: empty, absolute, a `..` component, or control characters (names could escape a
    directory on extraction or forge log lines). Unsupported: pickle payloads, never decoded here.
    """
    parts = re.split(r"[/\\]", name)
    if (
        not name
        or _CONTROL.search(name)
        or name.startswith(("/", "\\"))
        or ".." in parts
        or re.match(r"[A-Za-z]:", name)
    ):
        return "unsafe_member_name"
    if name.rsplit(".", 1)[-1].lower() in UNSUPPORTED_EXTS and "." in name:
        return "unsupported_member"
    return None


def split_member(name: str) -> tuple[str, str]:
    """("dir/key", "ext.more") from "dir/key.ext.more": webdataset's rule, the first dot of the basename."""
    head, slash, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return head + slash + stem, ext.lower()


def group_key(name: str) -> str:
    """Key used to group members; unsafe names group by everything before their last dot."""
    if member_problem(name) == "unsafe_member_name":
        return name.rsplit(".", 1)[0]
    return split_member(name)[0]


# --- reading and writing ---------------------------------------------------------------------
class TarTruncated(Exception):
    """The archive ends before a member's data or before the end-of-archive marker.

    `member` names the member whose data was cut, when its header was still readable.
    """

    def __init__(self, message: str, member: str | None = None) -> None:
        super().__init__(message)
        self.member = member


class MemberMismatch(Exception):
    """The bytes at an indexed offset are not the member the index says they are."""


@dataclass
class TarMember:
    """One regular file in a tar: its name, where its data starts, and the data itself."""

    name: str
    offset_data: int
    size: int
    data: bytes


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    chunks, left = [], n
    while left:
        chunk = f.read(left)
        if not chunk:
            raise TarTruncated(f"shard ends inside {what} ({n - left} of {n} bytes)")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _parse_pax(data: bytes) -> dict[str, str]:
    """Records of the form b"<len> <key>=<value>\\n"."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def iter_members(f: BinaryIO) -> Iterator[TarMember]:
    """Yield every regular file of the tar stream `f` in order, with its data offset.

    Raises `TarTruncated` if the stream is empty, ends inside a header or member, or ends without
    the zero block that marks a complete archive; members before that point have been yielded.
    """
    pos = 0
    pending_name: str | None = None
    pending_size: int | None = None
    while True:
        block = f.read(BLOCK)
        if not block:
            raise TarTruncated("empty shard" if pos == 0 else "no end-of-archive marker")
        if len(block) < BLOCK:
            block += _read_exact(f, BLOCK - len(block), "a header")
        pos += BLOCK
        if block == bytes(BLOCK):
            return
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise TarTruncated(f"unreadable header at byte {pos - BLOCK}: {exc}") from exc
        size = pending_size if pending_size is not None else info.size
        name = pending_name if pending_name is not None else info.name
        try:
            data = _read_exact(f, size, f"member {name!r}")
            _read_exact(f, _padded(size) - size, "member padding")
        except TarTruncated as exc:
            raise TarTruncated(
                str(exc), member=name if info.type in tarfile.REGULAR_TYPES else None
            ) from None
        offset_data, pos = pos, pos + _padded(size)
        if info.type in _PAX_TYPES:
            pax = _parse_pax(data)
            pending_name = pax.get("path", pending_name)
            pending_size = int(pax["size"]) if "size" in pax else pending_size
        elif info.type in _LONGNAME_TYPES:
            pending_name = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
        elif info.type in _GLOBAL_TYPES or info.type in _SKIPPED_META_TYPES:
            continue
        else:
            pending_name = pending_size = None
            if info.type in tarfile.REGULAR_TYPES:
                yield TarMember(name, offset_data, size, data)


def read_member(f: BinaryIO, offset: int, size: int, name: str, file_size: int) -> bytes:
    """Read member `name` whose data the index places at `offset`, checking its ustar header first.

    The header check costs nothing extra (it is read in the same call) and catches an index that no
    longer matches its shard. Raises `TarTruncated` when the shard is shorter than the member's end
    and `MemberMismatch` when the header names another member or size.
    """
    if offset < BLOCK or offset + size > file_size:
        raise TarTruncated(f"member {name!r} needs bytes up to {offset + size}, shard has {file_size}")
    f.seek(offset - BLOCK)
    buf = f.read(BLOCK + size)
    if len(buf) < BLOCK + size:
        raise TarTruncated(f"member {name!r}: short read at byte {offset}")
    try:
        info = tarfile.TarInfo.frombuf(buf[:BLOCK], "utf-8", "surrogateescape")
    except tarfile.HeaderError as exc:
        raise MemberMismatch(f"no tar header before byte {offset} for {name!r}: {exc}") from exc
    if info.size != size or not _same_name(info.name, name):
        raise MemberMismatch(
            f"index expects {name!r} ({size} B) at byte {offset}, shard has {info.name!r} ({info.size} B)"
        )
    return buf[BLOCK:]


def _same_name(header_name: str, name: str) -> bool:
    """A ustar header keeps at most 100 name bytes; a longer name lives in a preceding pax header."""
    long_name = len(name.encode()) > 100
    return header_name == name or (long_name and name.encode()[:100] == header_name.encode()[:100])


class TarWriter:
    """Writes one tar file under a temporary name and renames it into place only when complete.

    A killed writer leaves `.NAME.partial-PID`, never a half-written file under the final name.
    The sha256 and size are computed while writing, so indexing costs no second read.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.tmp = temp_name(self.path, "partial")
        self._f = open(self.tmp, "wb")
        self._sha = hashlib.sha256()
        self.offset = 0

    def _write(self, data: bytes) -> None:
        self._f.write(data)
        self._sha.update(data)
        self.offset += len(data)

    def add(self, name: str, data: bytes) -> int:
        """Append a member; returns the byte offset where its data starts."""
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict"))
        start = self.offset
        self._write(data + bytes(_padded(len(data)) - len(data)))
        return start

    def close(self) -> tuple[str, int]:
        """Finish the archive, fsync and rename; returns (sha256 hex, size in bytes)."""
        self._write(bytes(2 * BLOCK))
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        replace_durably(self.tmp, self.path)
        return self._sha.hexdigest(), self.offset

    def abort(self) -> None:
        self._f.close()
        self.tmp.unlink(missing_ok=True)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
