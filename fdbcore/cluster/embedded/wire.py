"""msgpack encodings shared by the embedded cluster's RPC messages and its persisted metadata.

Keys and values are msgpack ``bin``; text is ``str``. Composite types travel as plain lists so that a
message costs one C-level pack/unpack, not a Python step per field:

- ``KeyRange`` -> ``[begin, end]``; ``Shard`` -> ``[id, begin, end]``;
- ``RangeLock`` -> ``[begin, end, owner]``;
- mutations -> three parallel lists ``[types, params1, params2]`` (:data:`Columns`);
- range-read results -> one flat list ``[k0, v0, k1, v1, ...]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack

from fdbcore.cluster.interface import RangeLock, Shard
from fdbcore.keys import KeyRange
from fdbcore.mutations import Mutation

#: The gRPC service name; methods are ``/<SERVICE>/<Name>``.
SERVICE = "fdbcore.EmbeddedCluster"
#: Commits may carry 10 MB of mutations and range reads up to 16 MB.
MAX_MESSAGE_BYTES = 64 << 20
CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]

#: A commit's mutations as three parallel lists: types, first params, second params.
Columns = tuple[list[int], list[bytes], list[bytes]]


def pack(obj: object) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def ranges_out(ranges: Sequence[KeyRange]) -> list[list[bytes]]:
    return [[r.begin, r.end] for r in ranges]


def ranges_in(raw: Sequence[Sequence[bytes]]) -> list[KeyRange]:
    return [KeyRange(bytes(b), bytes(e)) for b, e in raw]


def shards_out(shards: Sequence[Shard]) -> list[list[object]]:
    return [[s.id, s.range.begin, s.range.end] for s in shards]


def shards_in(raw: Sequence[Sequence[Any]]) -> list[Shard]:
    return [Shard(i, KeyRange(b, e)) for i, b, e in raw]


def locks_out(locks: Sequence[RangeLock]) -> list[list[object]]:
    return [[lk.range.begin, lk.range.end, lk.owner] for lk in locks]


def locks_in(raw: Sequence[Sequence[Any]]) -> list[RangeLock]:
    return [RangeLock(KeyRange(b, e), owner) for b, e, owner in raw]


def mutations_out(mutations: Sequence[Mutation]) -> Columns:
    if not mutations:
        return [], [], []
    types, p1s, p2s = zip(*mutations, strict=True)
    return list(types), list(p1s), list(p2s)
