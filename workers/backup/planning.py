"""How a backup divides its key ranges: snapshot tasks per shard, and log partitions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fdbcore.cluster.interface import Shard
from fdbcore.keys import KeyRange, normalize_ranges

#: At most this many log partitions (tags) per backup; each is one capture and one file per flush.
MAX_LOG_PARTITIONS = 16


def split_by_shards(ranges: Sequence[KeyRange], shards: Sequence[Shard]) -> list[KeyRange]:
    """The backup ranges cut at shard boundaries: one snapshot task per piece, like FDB's dispatch."""
    out = []
    for r in normalize_ranges(ranges):
        for s in sorted(shards, key=lambda s: s.range.begin):
            piece = r.intersection(s.range)
            if piece is not None:
                out.append(piece)
    return out


def estimated_bytes(pieces: Sequence[KeyRange], shards: Sequence[Shard]) -> list[int]:
    """Each piece's bytes as the cluster estimates them: its shards' counts (a piece of
    :func:`split_by_shards` lies in one shard; a part of a shard counts as all of it)."""
    return [sum(s.bytes for s in shards if s.range.intersects(p)) for p in pieces]


@dataclass(frozen=True)
class LogPartition:
    """A tag of the partitioned logs: a key-space span and the backup ranges captured inside it."""

    span: KeyRange
    ranges: list[KeyRange]


def choose_partitions(
    ranges: Sequence[KeyRange], shards: Sequence[Shard], limit: int = MAX_LOG_PARTITIONS
) -> list[LogPartition]:
    """Group consecutive shard pieces into at most ``limit`` disjoint partitions of similar count."""
    pieces = split_by_shards(ranges, shards)
    if not pieces:
        return []
    n = min(limit, len(pieces))
    groups = [pieces[i * len(pieces) // n : (i + 1) * len(pieces) // n] for i in range(n)]
    return [LogPartition(KeyRange(g[0].begin, g[-1].end), normalize_ranges(g)) for g in groups]
