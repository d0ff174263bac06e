"""Whole uniform blocks: the same records as the reference decoder, or None when not uniform."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fdbcore.formats.crc32c import crc32c
from fdbcore.formats.partitioned_log import PartitionedLogWriter, decode_partitioned_log_block
from fdbcore.formats.plog_blocks import uniform_block
from fdbcore.mutations import Mutation, MutationType, clear, clear_range, set_value
from tests.fdbcore.formats.handmade import be32, be64, le32, le_lp, sink

HEADER = le32(4110)


def blocks_of(records: list[tuple[int, int, Mutation]], block_size: int = 4096, checksums: bool = False) -> list[bytes]:
    out = sink()
    w = PartitionedLogWriter(out, block_size, checksums=checksums)
    for version, sub, m in records:
        w.add(version, sub, m)
    w.finish()
    data = out.getvalue()
    return [data[i : i + block_size] for i in range(0, len(data), block_size)]


def same_as_reference(block: bytes) -> None:
    whole = uniform_block(block, "block")
    assert whole is not None
    reference = decode_partitioned_log_block(block)
    assert whole.mutations.mutations() == [m for _, _, m in reference]
    assert whole.records() == reference
    assert whole.mutations.count == len(reference)
    assert whole.mutations.byte_size == sum(m.byte_size() for _, _, m in reference)
    assert whole.first == reference[0][:2] and whole.last == reference[-1][:2]
    assert whole.min_version == min(v for v, _, _ in reference)
    assert whole.max_version == max(v for v, _, _ in reference)
    assert whole.min_key == min(m.param1 for _, _, m in reference)
    assert whole.max_key == max(m.param1 for _, _, m in reference)
    assert whole.kinds == {m.type for _, _, m in reference}


fixed_keys = st.integers(0, 6).flatmap(
    lambda n: st.lists(st.binary(min_size=n, max_size=n), min_size=1, max_size=200)  # 0x00 and 0xFF included
)


@given(
    fixed_keys,
    st.integers(0, 40),
    st.sampled_from([MutationType.SET_VALUE, MutationType.ADD_VALUE, MutationType.MAX]),
    st.integers(0, 1 << 40),
    st.sampled_from([256, 4096]),
)
def test_uniform_blocks_decode_as_the_reference_does(
    keys: list[bytes], value_size: int, kind: int, first_version: int, block_size: int
) -> None:
    records = [
        (first_version + i // 3, i % 3, Mutation(kind, k, bytes([i % 256]) * value_size)) for i, k in enumerate(keys)
    ]
    for block in blocks_of(records, block_size):  # every block full and padded, the last one short
        same_as_reference(block)


def test_types_of_one_layout_mix_and_clear_ranges_of_one_width_pass() -> None:
    records = [(10, 0, set_value(b"aa", b"xy")), (10, 1, Mutation(MutationType.ADD_VALUE, b"ab", b"\x01\x00"))]
    records.append((11, 0, clear_range(b"ac", b"ad")))
    [block] = blocks_of(records)
    same_as_reference(block)


def test_blocks_that_are_not_uniform_are_left_to_the_reference_decoder() -> None:
    mixed = blocks_of([(1, 0, set_value(b"a", b"1")), (1, 1, set_value(b"bb", b"1"))])[0]
    compact_clears = blocks_of([(1, 0, clear(b"a")), (1, 1, clear(b"b"))])[0]
    checksummed = blocks_of([(1, 0, set_value(b"a", b"1")), (1, 1, set_value(b"b", b"1"))], checksums=True)[0]
    other_value_length = blocks_of([(1, 0, set_value(b"a", b"12")), (1, 1, set_value(b"b", b"1"))])[0]
    for block in (mixed, compact_clears, checksummed, other_value_length):
        assert uniform_block(block, "block") is None
        assert decode_partitioned_log_block(block)  # the reference decoder takes them


def test_malformed_blocks_are_left_to_the_reference_decoder() -> None:
    msg = bytes([0]) + le_lp(b"k") + le_lp(b"v")
    good = HEADER + be64(1) + be32(0) + be32(len(msg)) + msg
    assert uniform_block(good, "block") is not None
    cases = [
        le32(2001) + good[4:],  # another format's header
        HEADER,  # no record
        good + b"\x00",  # a byte after the last record that is not padding
        good + b"\xff\x00",  # padding with a hole
        good[:-1],  # the last record cut short
        HEADER + be64(1) + be32(0) + be32(len(msg)) + bytes([0]) + le32(9) + msg[5:],  # param1 runs past
        HEADER + be64(1) + be32(0) + be32(len(msg)) + bytes([0x57]) + msg[1:],  # an invalid type
    ]
    for block in cases:
        assert uniform_block(block, "block") is None


def test_checksum_flags_are_never_taken_whole() -> None:
    crc = crc32c(b"ab", 0)
    msg = bytes([0x80]) + le_lp(b"a") + le_lp(b"b" + le32(crc))
    block = HEADER + be64(5) + be32(2) + be32(len(msg)) + msg
    assert uniform_block(block, "block") is None
    assert decode_partitioned_log_block(block) == [(5, 2, set_value(b"a", b"b"))]
