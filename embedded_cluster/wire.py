"""msgpack encodings shared by the embedded cluster's RPC messages and its persisted metadata.

Keys and values are msgpack ``bin``; text is ``str``. Composite types travel as plain lists so that a
message costs one C-level pack/unpack, not a Python step per field:

- ``KeyRange`` -> ``[begin, end]``; ``Shard`` -> ``[id, begin, end]``;
- ``RangeLock`` -> ``[begin, end, owner, block_reads]``;
- mutations -> three parallel lists ``[types, params1, params2]`` (:data:`Columns`);
- range-read results -> one flat list ``[k0, v0, k1, v1, ...]``;
- ``BulkDumpBatch`` -> ``[begin, end, version, manifest_path, data_path, bytes, key_count, data_file_size,
  checksum]``; ``BulkLoadResult`` -> ``[begin, end, keys_loaded, bytes_loaded, files_ingested]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack

from fdbcore.cluster.interface import BulkDumpBatch, BulkLoadResult, RangeLock, Shard
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
    return [[s.id, s.range.begin, s.range.end, s.bytes] for s in shards]


def shards_in(raw: Sequence[Sequence[Any]]) -> list[Shard]:
    return [Shard(i, KeyRange(b, e), n) for i, b, e, n in raw]


def locks_out(locks: Sequence[RangeLock]) -> list[list[object]]:
    return [[lk.range.begin, lk.range.end, lk.owner, lk.block_reads] for lk in locks]


def locks_in(raw: Sequence[Sequence[Any]]) -> list[RangeLock]:
    return [RangeLock(KeyRange(b, e), owner, block_reads) for b, e, owner, block_reads in raw]


def mutations_out(mutations: Sequence[Mutation]) -> Columns:
    if not mutations:
        return [], [], []
    types, p1s, p2s = zip(*mutations, strict=True)
    return list(types), list(p1s), list(p2s)


def batches_out(batches: Sequence[BulkDumpBatch]) -> list[list[object]]:
    return [
        [
            b.range.begin,
            b.range.end,
            b.version,
            b.manifest_path,
            b.data_path,
            b.bytes,
            b.key_count,
            b.data_file_size,
            b.checksum,
        ]
        for b in batches
    ]


def batches_in(raw: Sequence[Sequence[Any]]) -> list[BulkDumpBatch]:
    return [BulkDumpBatch(KeyRange(b, e), *rest) for b, e, *rest in raw]


def load_result_out(r: BulkLoadResult) -> list[object]:
    return [r.range.begin, r.range.end, r.keys_loaded, r.bytes_loaded, r.files_ingested]


def load_result_in(raw: Sequence[Any]) -> BulkLoadResult:
    begin, end, keys, nbytes, files = raw
    return BulkLoadResult(KeyRange(begin, end), keys, nbytes, files)
