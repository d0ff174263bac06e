"""V2 partitioned mutation logs (``plogs/``), as FDB backup workers write them (fdb-formats.md §3.2).

Blocks have header 4110; each record is a BE int64 commit version, a BE uint32 subsequence, a BE uint32
message length and the mutation in MutationRef wire form. A file with no mutations is empty (0 bytes).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

from fdbcore import errors
from fdbcore.formats.framing import (
    DEFAULT_BLOCK_SIZE,
    PAD,
    PARTITIONED_LOG_VERSION,
    FramedWriter,
    check_header,
    check_padding,
)
from fdbcore.formats.io import ByteSource, Sink
from fdbcore.formats.mutation_codec import decode_mutation_ref, encode_mutation_ref
from fdbcore.keys import printable
from fdbcore.mutations import Mutation, MutationType

_RECORD_HEADER = struct.Struct(">qII")
_REF_HEAD = struct.Struct("<BI")  # MutationRef: type, then param1's little-endian length
_U32_LE = struct.Struct("<I")
#: Types a record carries as plain (no checksum flag bits); anything else takes the full decoder.
_PLAIN_TYPES = frozenset(range(MutationType.MAX_ATOMIC_OP))
_CLEAR_RANGE = int(MutationType.CLEAR_RANGE)  # a plain int: Enum attribute lookups are slow in a hot loop


class LogMutation(NamedTuple):
    version: int
    subsequence: int
    mutation: Mutation


class PartitionedLogWriter(FramedWriter):
    """Appends records in the order given (callers pass them in (version, subsequence) order).

    ``checksums`` adds the CRC-32C suffix as clusters with ``ENABLE_MUTATION_CHECKSUM`` do.
    """

    def __init__(self, sink: Sink, block_size: int = DEFAULT_BLOCK_SIZE, checksums: bool = False) -> None:
        super().__init__(sink, block_size, PARTITIONED_LOG_VERSION)
        self._checksums = checksums

    def add(self, version: int, subsequence: int, mutation: Mutation) -> None:
        if mutation.type == MutationType.CLEAR_RANGE and mutation.param1 > mutation.param2:
            # an inverted clear with an empty end would read back as a compact single-key clear
            raise errors.InvertedRange(f"clear range {printable(mutation.param1)}..{printable(mutation.param2)}")
        msg = encode_mutation_ref(mutation, self._checksums)
        self._w.reserve(_RECORD_HEADER.size + len(msg))
        self._w.append(_RECORD_HEADER.pack(version, subsequence, len(msg)))
        self._w.append(msg)

    def finish(self) -> None:
        self._w.finish()


def decode_partitioned_log_block(block: bytes, what: str = "partitioned log block") -> list[LogMutation]:
    """Every record of one block, in order.

    The common record (no checksum suffix, not a compact single-key clear) is decoded inline without
    copying the message out of the block: log replay spends most of its time here. Every other record,
    and anything malformed, goes through :func:`decode_mutation_ref`, which validates and names errors.
    """
    pos = check_header(block, PARTITIONED_LOG_VERSION, what)
    out = []
    end = len(block)
    header, ref, u32 = _RECORD_HEADER.unpack_from, _REF_HEAD.unpack_from, _U32_LE.unpack_from
    new = tuple.__new__  # NamedTuple constructors run Python code; this is the same tuple, twice as fast
    while pos < end and block[pos] != PAD:
        if pos + 16 > end:
            raise errors.RestoreCorruptedData(f"{what}: record header at offset {pos} runs past the block end")
        version, sub, n = header(block, pos)
        start = pos + 16
        pos = start + n
        if pos > end:
            raise errors.RestoreCorruptedData(f"{what}: {n}-byte record at offset {start} runs past the block end")
        if n >= 9:
            type_, n1 = ref(block, start)
            p2_at = start + 9 + n1
            plain = type_ in _PLAIN_TYPES and p2_at <= pos and p2_at + u32(block, p2_at - 4)[0] == pos
            if plain and not (type_ == _CLEAR_RANGE and p2_at == pos and n1):
                mutation = new(Mutation, (type_, block[start + 5 : p2_at - 4], block[p2_at:pos]))
                out.append(new(LogMutation, (version, sub, mutation)))
                continue
        out.append(LogMutation(version, sub, decode_mutation_ref(block[start:pos], f"{what} offset {start}")))
    check_padding(block, pos, what)
    return out


def iter_partitioned_log(source: ByteSource, block_size: int) -> Iterator[LogMutation]:
    """Every mutation of a file in file order; an empty file yields nothing."""
    for offset, block in source.blocks(block_size):
        yield from decode_partitioned_log_block(block, f"{source.name} block at offset {offset}")
