"""V1 mutation logs (``logs/``), as FDB backup agents write them (fdb-formats.md §3.1).

Blocks have header 2001 and hold key/value records with BE uint32 length prefixes. A record key is
13 bytes: a hash byte, the BE commit version and the BE part number. The values of one version,
concatenated in part order, form a mutation list (see :mod:`fdbcore.formats.mutation_codec`) cut into
10,000-byte parts. Records are not in version order within a file, so reading groups them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import NamedTuple

from fdbcore import errors
from fdbcore.formats.framing import (
    DEFAULT_BLOCK_SIZE,
    V1_LOG_VERSION,
    FramedWriter,
    at_block_end,
    check_header,
    check_padding,
    read_with_len,
)
from fdbcore.formats.io import ByteSource, Sink
from fdbcore.formats.lookup3 import hashlittle
from fdbcore.formats.mutation_codec import decode_mutation_list, encode_mutation_list
from fdbcore.mutations import Mutation

LOG_RANGE_BLOCK_SIZE = 1_000_000  # CORE_VERSIONSPERSECOND: versions per hash bucket
MUTATION_BLOCK_SIZE = 10_000  # bytes per part of a version's mutation list
_KEY = struct.Struct(">BqI")


class LogRecord(NamedTuple):
    version: int
    part: int
    value: bytes


@lru_cache(maxsize=4096)
def _bucket_hash(bucket: int) -> int:
    return hashlittle(struct.pack("<I", bucket & 0xFFFFFFFF)) & 0xFF


def _hash_byte(version: int) -> int:
    """Low byte of lookup3 of the int32 LE ``version // LOG_RANGE_BLOCK_SIZE`` (``addBackupMutations``)."""
    return _bucket_hash(version // LOG_RANGE_BLOCK_SIZE)


def log_record_key(version: int, part: int) -> bytes:
    if version < 0:
        raise errors.InternalError(f"negative commit version {version}")
    return _KEY.pack(_hash_byte(version), version, part)


def decode_log_record_key(key: bytes, what: str) -> tuple[int, int]:
    if len(key) != _KEY.size:
        raise errors.RestoreCorruptedData(f"{what}: log record key is {len(key)} bytes, expected {_KEY.size}")
    hash_byte, version, part = _KEY.unpack(key)
    if version < 0 or hash_byte != _hash_byte(version):
        raise errors.RestoreCorruptedData(f"{what}: log record key hash does not match version {version}")
    return version, part


class V1LogWriter(FramedWriter):
    """Appends the mutations of one commit version at a time, cut into parts."""

    def __init__(self, sink: Sink, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        super().__init__(sink, block_size, V1_LOG_VERSION)

    def add(self, version: int, mutations: Iterable[Mutation]) -> None:
        group = encode_mutation_list(mutations)
        for part, start in enumerate(range(0, len(group), MUTATION_BLOCK_SIZE)):
            key = log_record_key(version, part)
            value = group[start : start + MUTATION_BLOCK_SIZE]
            self._w.reserve(8 + len(key) + len(value))
            self._w.append_with_len(key)
            self._w.append_with_len(value)

    def finish(self) -> None:
        self._w.finish()


def _records(block: bytes, what: str) -> Iterator[tuple[int, int, int, int]]:
    """``(version, part, value_start, value_end)`` of each record in a block."""
    pos = check_header(block, V1_LOG_VERSION, what)
    while not at_block_end(block, pos):
        key, pos = read_with_len(block, pos, what)
        version, part = decode_log_record_key(key, what)
        value_start = pos + 4
        _, pos = read_with_len(block, pos, what)
        yield version, part, value_start, pos
    check_padding(block, pos, what)


def decode_v1_log_block(block: bytes, what: str = "log block") -> list[LogRecord]:
    return [LogRecord(v, p, block[s:e]) for v, p, s, e in _records(block, what)]


def iter_v1_log(source: ByteSource, block_size: int, cached_blocks: int = 8) -> Iterator[tuple[int, list[Mutation]]]:
    """Each version's mutations, in version order.

    A first pass indexes where every part lies; the second reads the parts back version by version
    through a small block cache (records of nearby versions sit together, so hits are the rule).
    Memory: the index (about 200 bytes per record of up to 10 KB) plus ``cached_blocks`` blocks.
    """
    index: dict[int, dict[int, tuple[int, int, int]]] = {}
    for offset, block in source.blocks(block_size):
        what = f"{source.name} block at offset {offset}"
        for version, part, start, end in _records(block, what):
            parts = index.setdefault(version, {})
            if part in parts:
                raise errors.RestoreCorruptedData(f"{what}: version {version} part {part} appears twice")
            parts[part] = (offset, start, end)

    @lru_cache(maxsize=cached_blocks)
    def read_block(offset: int) -> bytes:
        return source.read(offset, min(block_size, source.size - offset))

    for version in sorted(index):
        parts = index.pop(version)
        if len(parts) - 1 != max(parts):
            raise errors.RestoreMissingData(f"{source.name}: version {version} lacks some of its parts")
        value = b"".join(read_block(o)[s:e] for o, s, e in (parts[p] for p in range(len(parts))))
        yield version, decode_mutation_list(value, f"{source.name} version {version}")
