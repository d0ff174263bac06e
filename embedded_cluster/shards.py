"""The shard map: what FDB's data distributor knows about how the key space is cut.

The whole key space ``['', '\\xff\\xff')`` is covered by contiguous shards, each with a 32-hex id and
an approximate byte count (keys plus values) kept up to date by every commit. A shard that grows past
the target size is split near its byte midpoint into two shards with fresh ids. System keys
(``['\\xff', '\\xff\\xff')``) always form their own shard, as in FDB.

Persisted in the ``meta`` column family, one entry per shard (``shard/<begin>``), written in the same
batch as the data changes that moved its byte count.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from embedded_cluster.wire import pack, unpack
from fdbcore.cluster.interface import Shard
from fdbcore.keys import ALL_END, USER_END, KeyRange

SHARD_PREFIX = b"shard/"


@dataclass(slots=True)
class ShardState:
    begin: bytes
    end: bytes
    id: str
    nbytes: int
    #: What the last exact count found when it was within the target (0: none since the shard was made
    #: or the server started); not stored. Commits count an overwrite as growth, so this keeps a shard
    #: of overwrites from being rescanned every round.
    counted: int = 0

    def public(self) -> Shard:
        return Shard(self.id, KeyRange(self.begin, self.end), self.nbytes)

    def encode(self) -> tuple[bytes, bytes]:
        return SHARD_PREFIX + self.begin, pack([self.end, self.id, self.nbytes])


def new_shard_id() -> str:
    return uuid.uuid4().hex


def initial_boundaries(count: int) -> list[bytes]:
    """``count`` user shards cut evenly by leading bytes, plus the system shard's start."""
    width = 1
    while 255 * 256 ** (width - 1) < count:
        width += 1
    span = 255 * 256 ** (width - 1)  # the user space's leading bytes are 0x00..0xfe
    cuts = sorted({(span * i // count).to_bytes(width, "big").rstrip(b"\x00") for i in range(1, count)})
    return [b"", *[c for c in cuts if c], USER_END]


class ShardMap:
    def __init__(self, shards: Sequence[ShardState]) -> None:
        self._shards = list(shards)
        self._begins = [s.begin for s in self._shards]
        if not self._shards or self._begins[0] != b"" or self._shards[-1].end != ALL_END:
            raise ValueError("shards must cover the whole key space")

    @classmethod
    def initial(cls, count: int) -> ShardMap:
        bounds = [*initial_boundaries(count), ALL_END]
        return cls([ShardState(b, e, new_shard_id(), 0) for b, e in pairwise(bounds)])

    @classmethod
    def decode(cls, entries: Iterable[tuple[bytes, bytes]]) -> ShardMap:
        shards = []
        for key, value in entries:
            end, shard_id, nbytes = unpack(value)
            shards.append(ShardState(key[len(SHARD_PREFIX) :], end, shard_id, nbytes))
        return cls(shards)

    def __getitem__(self, index: int) -> ShardState:
        return self._shards[index]

    def states(self) -> list[ShardState]:
        return list(self._shards)

    def public(self) -> list[Shard]:
        return [s.public() for s in self._shards]

    def index_of(self, key: bytes) -> int:
        return bisect_right(self._begins, key) - 1

    @property
    def begins(self) -> list[bytes]:
        """The shards' begin keys, sorted (shard ``i`` is ``[begins[i], begins[i + 1])``)."""
        return self._begins

    def split(self, index: int, split_key: bytes, left_bytes: int, total: int) -> tuple[ShardState, ShardState]:
        """Replace shard ``index`` by two new shards cut at ``split_key`` (``total`` bytes in all)."""
        old = self._shards[index]
        if not old.begin < split_key < old.end:
            raise ValueError("split key must fall strictly inside the shard")
        left = ShardState(old.begin, split_key, new_shard_id(), left_bytes)
        right = ShardState(split_key, old.end, new_shard_id(), max(0, total - left_bytes))
        self._shards[index : index + 1] = [left, right]
        self._begins[index : index + 1] = [left.begin, right.begin]
        return left, right

    def overlapping(self, begin: bytes, end: bytes) -> range:
        """Indexes of the shards that intersect ``[begin, end)``."""
        if begin >= end:
            return range(0)
        return range(self.index_of(begin), bisect_left(self._begins, end))
