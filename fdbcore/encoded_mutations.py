"""Mutations encoded in bulk, for writers that move millions of them (log replay).

A batch is three msgpack arrays, ``[types, params1, params2]``: the same three parallel columns that
cross a driver's wire, but built and joined as bytes. :meth:`EncodedMutations.of` encodes mutation
objects; whoever can produce the elements directly (a log block whose records share one layout, see
:mod:`fdbcore.formats.plog_blocks`) builds a batch without a Python object per mutation, and a driver
decodes the whole batch in one C-level step.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import msgpack

from fdbcore import errors
from fdbcore.cluster.limits import MUTATION_OVERHEAD
from fdbcore.mutations import Mutation, MutationType

_ARRAY16 = struct.Struct(">BH")
_ARRAY32 = struct.Struct(">BI")


def array_header(count: int) -> bytes:
    """The msgpack header of an array of ``count`` elements."""
    if count < 16:
        return bytes((0x90 | count,))
    if count < 1 << 16:
        return _ARRAY16.pack(0xDC, count)
    return _ARRAY32.pack(0xDD, count)


def bin_header(length: int) -> bytes:
    """The msgpack header of a ``bin`` of ``length`` bytes."""
    if length < 1 << 8:
        return bytes((0xC4, length))
    if length < 1 << 16:
        return struct.pack(">BH", 0xC5, length)
    return struct.pack(">BI", 0xC6, length)


def _elements(values: list[int] | list[bytes]) -> bytes:
    """The msgpack encoding of ``values``' elements, without the array header."""
    packed: bytes = msgpack.packb(values, use_bin_type=True)
    return packed[len(array_header(len(values))) :]


@dataclass(frozen=True, slots=True)
class EncodedMutations:
    """Mutations as msgpack elements of three columns, each column's elements concatenated."""

    count: int
    #: One positive fixint per mutation (every type is below 128).
    types: bytes
    #: One ``bin`` per mutation: the key (the begin key of a clear range).
    params1: bytes
    #: One ``bin`` per mutation: the value or operand (the end key of a clear range).
    params2: bytes
    #: Bytes as FDB counts them in a mutation list: 12 per mutation plus both params.
    byte_size: int

    @classmethod
    def of(cls, mutations: Sequence[Mutation]) -> EncodedMutations:
        if not mutations:
            return EMPTY
        types, p1s, p2s = (list(column) for column in zip(*mutations, strict=True))
        return cls.of_columns(types, p1s, p2s)

    @classmethod
    def of_columns(cls, types: list[int], p1s: list[bytes], p2s: list[bytes]) -> EncodedMutations:
        if not len(types) == len(p1s) == len(p2s):
            raise errors.ClientInvalidOperation("mutation columns differ in length")
        if types and not 0 <= min(types) <= max(types) < MutationType.MAX_ATOMIC_OP:
            raise errors.InvalidMutationType(f"mutation types {sorted(set(types))} include an invalid one")
        size = sum(map(len, p1s)) + sum(map(len, p2s)) + MUTATION_OVERHEAD * len(types)
        return cls(len(types), _elements(types), _elements(p1s), _elements(p2s), size)

    @staticmethod
    def join(parts: Sequence[EncodedMutations]) -> EncodedMutations:
        """The mutations of ``parts``, in order."""
        if len(parts) == 1:
            return parts[0]
        return EncodedMutations(
            sum(p.count for p in parts),
            b"".join(p.types for p in parts),
            b"".join(p.params1 for p in parts),
            b"".join(p.params2 for p in parts),
            sum(p.byte_size for p in parts),
        )

    def document(self) -> bytes:
        """The msgpack document ``[types, params1, params2]``."""
        head = array_header(self.count)
        return b"".join((b"\x93", head, self.types, head, self.params1, head, self.params2))

    def columns(self) -> tuple[list[int], list[bytes], list[bytes]]:
        """The three columns as lists, decoded in one step; ``client_invalid_operation`` if malformed."""
        return decode_document(self.document())

    def mutations(self) -> list[Mutation]:
        return [Mutation(t, a, b) for t, a, b in zip(*self.columns(), strict=True)]


EMPTY = EncodedMutations(0, b"", b"", b"", 0)


def decode_document(document: bytes) -> tuple[list[int], list[bytes], list[bytes]]:
    """The columns of an :meth:`EncodedMutations.document`, checked for shape. The content is checked
    by the commit, as for any mutations (types, key and value sizes, the legal key range)."""
    try:
        columns = msgpack.unpackb(document, use_list=True, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise errors.ClientInvalidOperation(f"encoded mutations are malformed: {exc}") from None
    if not (isinstance(columns, list) and len(columns) == 3 and all(isinstance(c, list) for c in columns)):
        raise errors.ClientInvalidOperation("encoded mutations are not three arrays")
    types, p1s, p2s = columns
    if not len(types) == len(p1s) == len(p2s):
        raise errors.ClientInvalidOperation("encoded mutation columns differ in length")
    return types, p1s, p2s
