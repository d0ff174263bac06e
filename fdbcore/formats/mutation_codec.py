"""The two byte forms a mutation takes inside backup logs.

- *MutationRef wire form* (V2 partitioned logs, fdb-formats.md §3.2): 1-byte type, then each param as a
  uint32 **LE** length and its bytes; optional CRC-32C and accumulative-checksum-index suffixes flagged
  by the type's top two bits; single-key clears written compactly.
- *Mutation list* (V1 log values, §3.1): an 8-byte LE protocol version, a uint32 LE byte count, then
  per mutation uint32 LE type, param lengths, and the params.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from fdbcore import errors
from fdbcore.formats.crc32c import crc32c
from fdbcore.keys import key_after, printable
from fdbcore.mutations import Mutation, MutationType

CHECKSUM_FLAG = 0x80
ACS_INDEX_FLAG = 0x40

#: ``ProtocolVersion::withBackupMutations()``, written by commit proxies in 7.4 and 8.0.
BACKUP_MUTATIONS_PROTOCOL = 0x0FDB00B062010001
#: Readers reject mutation lists whose protocol version is at or below this.
MIN_PROTOCOL_EXCLUSIVE = 0x0FDB00A200090001

_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")
_LIST_HEADER = struct.Struct("<QI")
_ENTRY_HEADER = struct.Struct("<III")


def _mutation_checksum(type_: int, param1: bytes, param2: bytes) -> int:
    """FDB seeds the CRC with the (flag-free) type, then appends param1 and param2."""
    return crc32c(param2, crc32c(param1, type_))


def _check_type(type_: int, what: str) -> None:
    if type_ >= MutationType.MAX_ATOMIC_OP:
        raise errors.RestoreCorruptedData(f"{what}: invalid mutation type {type_}")


def _check_encodable(type_: int) -> None:
    if not 0 <= type_ < MutationType.MAX_ATOMIC_OP:
        raise errors.InvalidMutationType(f"mutation type {type_} cannot be written to a backup log")


def encode_mutation_ref(m: Mutation, checksum: bool = False) -> bytes:
    """Serialize one mutation as FDB's BinaryWriter does; ``checksum`` adds the CRC-32C suffix (flag 0x80)."""
    type_, p1, p2 = m
    _check_encodable(type_)
    wire1, wire2 = (p2, b"") if type_ == MutationType.CLEAR_RANGE and p2 == key_after(p1) else (p1, p2)
    if checksum:
        wire2 += _U32.pack(_mutation_checksum(type_, p1, p2))
        type_ |= CHECKSUM_FLAG
    return b"".join((bytes((type_,)), _U32.pack(len(wire1)), wire1, _U32.pack(len(wire2)), wire2))


def decode_mutation_ref(msg: bytes, what: str) -> Mutation:
    """Inverse of :func:`encode_mutation_ref`: strips and verifies checksums, expands compact clears."""
    if len(msg) < 9:
        raise errors.RestoreCorruptedData(f"{what}: mutation of {len(msg)} bytes is too short")
    type_ = msg[0]
    n1 = _U32.unpack_from(msg, 1)[0]
    if 9 + n1 > len(msg):
        raise errors.RestoreCorruptedData(f"{what}: param1 length {n1} runs past the mutation")
    p1 = msg[5 : 5 + n1]
    n2 = _U32.unpack_from(msg, 5 + n1)[0]
    if 9 + n1 + n2 != len(msg):
        raise errors.RestoreCorruptedData(f"{what}: param2 length {n2} does not match the mutation size")
    p2 = msg[9 + n1 :]
    crc: int | None = None
    if type_ & CHECKSUM_FLAG:
        with_index = bool(type_ & ACS_INDEX_FLAG)
        if len(p2) < (6 if with_index else 4):
            raise errors.RestoreCorruptedData(f"{what}: param2 too short for its checksum suffix")
        if with_index:  # the 2-byte accumulative checksum index comes last, so it is stripped first
            p2 = p2[:-2]
        crc = _U32.unpack_from(p2, len(p2) - 4)[0]
        p2 = p2[:-4]
        type_ &= ~(CHECKSUM_FLAG | ACS_INDEX_FLAG)
    _check_type(type_, what)
    if type_ == MutationType.CLEAR_RANGE and not p2 and p1:
        if p1[-1] != 0:
            raise errors.RestoreCorruptedData(f"{what}: compact clear {printable(p1)} does not end in \\x00")
        p1, p2 = p1[:-1], p1
    if crc is not None and crc != _mutation_checksum(type_, p1, p2):
        raise errors.RestoreCorruptedData(f"{what}: mutation checksum mismatch")
    return Mutation(type_, p1, p2)


def encode_mutation_list(mutations: Iterable[Mutation]) -> bytes:
    """A V1 log value before it is cut into parts: protocol version, byte count, mutations."""
    parts: list[bytes] = []
    for type_, p1, p2 in mutations:
        _check_encodable(type_)
        parts += (_ENTRY_HEADER.pack(type_, len(p1), len(p2)), p1, p2)
    body = b"".join(parts)
    return _LIST_HEADER.pack(BACKUP_MUTATIONS_PROTOCOL, len(body)) + body


def decode_mutation_list(data: bytes, what: str) -> list[Mutation]:
    """Validates as ``decodeBackupLogValue`` does: protocol version, byte count, exact end."""
    if len(data) < _LIST_HEADER.size:
        raise errors.RestoreCorruptedData(f"{what}: mutation list of {len(data)} bytes has no header")
    protocol, total = _LIST_HEADER.unpack_from(data)
    if protocol <= MIN_PROTOCOL_EXCLUSIVE:
        raise errors.IncompatibleProtocolVersion(f"{what}: mutation list protocol version {protocol:#x}")
    end = _LIST_HEADER.size + total
    if end > len(data):
        raise errors.RestoreMissingData(
            f"{what}: mutation list says {total} bytes but has {len(data) - _LIST_HEADER.size}"
        )
    if end != len(data):
        raise errors.RestoreCorruptedData(f"{what}: {len(data) - end} bytes after the mutation list")
    out = []
    pos = _LIST_HEADER.size
    while pos < end:
        if pos + _ENTRY_HEADER.size > end:
            raise errors.RestoreCorruptedData(f"{what}: truncated mutation header at offset {pos}")
        type_, n1, n2 = _ENTRY_HEADER.unpack_from(data, pos)
        _check_type(type_, what)
        pos += _ENTRY_HEADER.size
        if pos + n1 + n2 > end:
            raise errors.RestoreCorruptedData(f"{what}: mutation params run past the list end")
        out.append(Mutation(type_, data[pos : pos + n1], data[pos + n1 : pos + n1 + n2]))
        pos += n1 + n2
    return out
