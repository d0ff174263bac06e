from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fdbcore import errors
from fdbcore.formats.crc32c import crc32c
from fdbcore.formats.io import BytesSource
from fdbcore.formats.mutation_codec import encode_mutation_list
from fdbcore.formats.partitioned_log import (
    LogMutation,
    PartitionedLogWriter,
    decode_partitioned_log_block,
    iter_partitioned_log,
)
from fdbcore.mutations import Mutation, clear, clear_range, set_value
from tests.fdbcore.formats.handmade import be32, be64, le32, le_lp, sink
from tests.fdbcore.formats.strategies import mutations

HEADER = le32(4110)


def record(version: int, sub: int, msg: bytes) -> bytes:
    return be64(version) + be32(sub) + be32(len(msg)) + msg


def ref(type_: int, p1: bytes, p2: bytes) -> bytes:
    return bytes([type_]) + le_lp(p1) + le_lp(p2)


SET_AB = ref(0, b"a", b"b")


def test_set_record_golden() -> None:
    expected = HEADER + record(100, 1, SET_AB)
    out = sink()
    w = PartitionedLogWriter(out)
    w.add(100, 1, set_value(b"a", b"b"))
    w.finish()
    assert out.getvalue() == expected
    assert list(iter_partitioned_log(BytesSource(expected), 1 << 20)) == [(100, 1, set_value(b"a", b"b"))]


def test_single_key_clear_is_written_compactly() -> None:
    expected = HEADER + record(7, 0, ref(1, b"k\x00", b""))
    out = sink()
    w = PartitionedLogWriter(out)
    w.add(7, 0, clear(b"k"))
    w.finish()
    assert out.getvalue() == expected
    assert decode_partitioned_log_block(expected) == [(7, 0, clear_range(b"k", b"k\x00"))]


def test_checksum_flag_0x80() -> None:
    crc = crc32c(b"ab", 0)  # seeded with the type, over param1 then param2
    block = HEADER + record(5, 2, ref(0x80, b"a", b"b" + le32(crc)))
    assert decode_partitioned_log_block(block) == [(5, 2, set_value(b"a", b"b"))]
    out = sink()
    w = PartitionedLogWriter(out, checksums=True)
    w.add(5, 2, set_value(b"a", b"b"))
    w.finish()
    assert out.getvalue() == block


def test_checksum_and_accumulative_index_flags_0xc0() -> None:
    crc = crc32c(b"ab", 0)
    block = HEADER + record(5, 2, ref(0xC0, b"a", b"b" + le32(crc) + (513).to_bytes(2, "little")))
    assert decode_partitioned_log_block(block) == [(5, 2, set_value(b"a", b"b"))]


def test_compact_clear_with_checksum() -> None:
    crc = crc32c(b"k" + b"k\x00", 1)  # the checksum covers the expanded clear
    block = HEADER + record(9, 0, ref(0x81, b"k\x00", le32(crc)))
    assert decode_partitioned_log_block(block) == [(9, 0, clear_range(b"k", b"k\x00"))]


def test_checksum_mismatch_is_corrupted() -> None:
    crc = crc32c(b"ab", 0) ^ 1
    with pytest.raises(errors.RestoreCorruptedData, match="checksum"):
        decode_partitioned_log_block(HEADER + record(5, 2, ref(0x80, b"a", b"b" + le32(crc))))


def test_multi_block_golden() -> None:
    rec1, rec2 = record(1, 0, SET_AB), record(2, 0, ref(0, b"c", b"d"))
    bs = 4 + len(rec1) + 3
    expected = HEADER + rec1 + b"\xff" * 3 + HEADER + rec2
    out = sink()
    w = PartitionedLogWriter(out, block_size=bs)
    w.add(1, 0, set_value(b"a", b"b"))
    w.add(2, 0, set_value(b"c", b"d"))
    w.finish()
    assert out.getvalue() == expected and w.block_count == 2
    assert [m.version for m in iter_partitioned_log(BytesSource(expected), bs)] == [1, 2]


def test_empty_file() -> None:
    out = sink()
    w = PartitionedLogWriter(out)
    w.finish()
    assert out.getvalue() == b"" and w.bytes_written == 0
    assert list(iter_partitioned_log(BytesSource(b""), 1 << 20)) == []


@pytest.mark.parametrize(
    ("block", "error"),
    [
        (le32(2001) + record(1, 0, SET_AB), errors.RestoreUnsupportedFileVersion),
        (HEADER + record(1, 0, SET_AB) + b"\xff\x00", errors.RestoreCorruptedDataPadding),
        (HEADER + record(1, 0, SET_AB)[:-1], errors.RestoreCorruptedData),
        (HEADER + record(1, 0, SET_AB)[:10], errors.RestoreCorruptedData),
        (HEADER + record(1, 0, ref(24, b"a", b"")), errors.RestoreCorruptedData),  # type >= MAX_ATOMIC_OP
        (HEADER + record(1, 0, ref(0x40, b"a", b"bxx")), errors.RestoreCorruptedData),  # index flag alone
        (HEADER + record(1, 0, ref(0x80, b"a", b"xx")), errors.RestoreCorruptedData),  # no room for the CRC
        (HEADER + record(1, 0, ref(1, b"k\x01", b"")), errors.RestoreCorruptedData),  # compact clear sans \0
        (HEADER + record(1, 0, SET_AB + b"\x00"), errors.RestoreCorruptedData),  # bytes after param2
    ],
)
def test_corruption(block: bytes, error: type[errors.FDBError]) -> None:
    with pytest.raises(error):
        decode_partitioned_log_block(block)


def test_inverted_clear_is_refused() -> None:
    with pytest.raises(errors.InvertedRange):
        PartitionedLogWriter(sink()).add(1, 0, clear_range(b"b", b""))


@given(
    st.lists(st.tuples(st.integers(0, 2**63 - 1), st.integers(0, 2**32 - 1), mutations), max_size=40),
    st.integers(0, 300),
    st.booleans(),
)
def test_round_trip(records: list[tuple[int, int, Mutation]], slack: int, checksums: bool) -> None:
    # The largest record is 16 + 9 + params (+ 4 for the CRC); blocks are just big enough or somewhat larger.
    bs = 4 + max((29 + len(m.param1) + len(m.param2) for _, _, m in records), default=0) + slack + 1
    out = sink()
    w = PartitionedLogWriter(out, block_size=bs, checksums=checksums)
    for version, sub, m in records:
        w.add(version, sub, m)
    w.finish()
    data = out.getvalue()
    assert len(data) == w.bytes_written
    assert list(iter_partitioned_log(BytesSource(data), bs)) == [LogMutation(*r) for r in records]


def test_invalid_mutation_types_are_refused() -> None:
    with pytest.raises(errors.InvalidMutationType):
        PartitionedLogWriter(sink()).add(1, 0, Mutation(24, b"a", b""))
    with pytest.raises(errors.InvalidMutationType):
        encode_mutation_list([Mutation(200, b"a", b"")])
