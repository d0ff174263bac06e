from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fdbcore import errors
from fdbcore.encoded_mutations import EMPTY, EncodedMutations, array_header, bin_header, decode_document
from fdbcore.mutations import Mutation, MutationType, set_value
from tests.fdbcore.formats.strategies import mutations


@given(st.lists(mutations, max_size=40), st.lists(mutations, max_size=40))
def test_encoding_joining_and_decoding_round_trip(first: list[Mutation], second: list[Mutation]) -> None:
    a, b = EncodedMutations.of(first), EncodedMutations.of(second)
    joined = EncodedMutations.join([a, b])
    assert joined.mutations() == first + second
    assert joined.count == len(first) + len(second)
    assert joined.byte_size == sum(m.byte_size() for m in first + second)
    types, p1s, p2s = msgpack.unpackb(joined.document())  # a plain msgpack document
    assert list(zip(types, p1s, p2s, strict=True)) == [tuple(m) for m in first + second]


@pytest.mark.parametrize("count", [0, 15, 16, 65535, 65536])
def test_array_headers_at_their_size_boundaries(count: int) -> None:
    assert array_header(count) == msgpack.packb([0] * count)[: len(array_header(count))]
    assert msgpack.unpackb(array_header(count) + b"\x00" * count) == [0] * count


@pytest.mark.parametrize("length", [0, 255, 256, 65535, 65536])
def test_bin_headers_at_their_size_boundaries(length: int) -> None:
    assert bin_header(length) + b"x" * length == msgpack.packb(b"x" * length)


def test_invalid_types_are_refused_when_encoding() -> None:
    with pytest.raises(errors.InvalidMutationType):
        EncodedMutations.of([Mutation(MutationType.MAX_ATOMIC_OP, b"k", b"v")])
    with pytest.raises(errors.ClientInvalidOperation, match="differ in length"):
        EncodedMutations.of_columns([0], [b"k"], [])


def test_malformed_documents_are_named() -> None:
    assert EMPTY.mutations() == []
    with pytest.raises(errors.ClientInvalidOperation, match="malformed"):
        decode_document(b"\x93\xc1")
    with pytest.raises(errors.ClientInvalidOperation, match="three arrays"):
        decode_document(msgpack.packb([[0], [b"k"]]))
    with pytest.raises(errors.ClientInvalidOperation, match="differ in length"):
        decode_document(msgpack.packb([[0, 0], [b"k"], [b"v"]]))
    assert decode_document(EncodedMutations.of([set_value(b"k", b"v")]).document()) == ([0], [b"k"], [b"v"])
