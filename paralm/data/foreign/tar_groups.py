"""Member groups of a foreign tar shard: every member of one key, whatever its extensions.

Why not `scan_shard`: that scanner reads paralm's own layout and calls a group without a `.json`
member incomplete, while a foreign pipeline may write `wav` + `cls` + `txt` and no JSON at all. The
grouping rule is webdataset's (consecutive members sharing the key before the first dot of the
basename; a repeated extension starts a new group), so any shard `webdataset.WebDataset` reads groups
the same way here. A shard cut short yields one `truncated_shard` record for the group the cut hit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from paralm.data.skips import SkipRecord
from paralm.data.tario import TarMember, TarTruncated, group_key, iter_members, split_member


@dataclass
class MemberGroup:
    """All members of one key in a shard, by extension ("wav", "cls", "json", "seg.txt", ...)."""

    key: str
    shard: str
    members: dict[str, TarMember]


def iter_groups(f: BinaryIO, shard: str) -> Iterator[MemberGroup | SkipRecord]:
    """Walk the tar stream `f` in order, yielding each key's members, or a skip for the group a cut destroyed."""
    key, members = None, {}
    try:
        for member in iter_members(f):
            member_key, ext = group_key(member.name), split_member(member.name)[1]
            if members and (member_key != key or ext in members):
                yield MemberGroup(key, shard, members)
                members = {}
            key = member_key
            members[ext] = member
    except TarTruncated as exc:
        cut_key = group_key(exc.member) if exc.member is not None else None
        if members and cut_key is not None and cut_key != key:
            yield MemberGroup(key, shard, members)  # the cut hit the next key's member: this group is whole
            members, key = {}, cut_key
        yield SkipRecord(key or cut_key or "", shard, "truncated_shard", str(exc))
        return
    if members:
        yield MemberGroup(key, shard, members)
