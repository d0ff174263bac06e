from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fdbcore import errors
from fdbcore.formats.io import BytesSource
from fdbcore.formats.mutation_codec import decode_mutation_list, encode_mutation_list
from fdbcore.formats.v1_log import V1LogWriter, decode_v1_log_block, iter_v1_log, log_record_key
from fdbcore.mutations import Mutation, clear_range, set_value
from tests.fdbcore.formats.handmade import be32, be64, hashlittle_of_word, le32, lp, sink
from tests.fdbcore.formats.strategies import mutations

HEADER = le32(2001)
PROTOCOL = bytes.fromhex("01 00 01 62 B0 00 DB 0F")


def key(version: int, part: int) -> bytes:
    return bytes([hashlittle_of_word(version // 1_000_000) & 0xFF]) + be64(version) + be32(part)


def entry(type_: int, p1: bytes, p2: bytes) -> bytes:
    return le32(type_) + le32(len(p1)) + le32(len(p2)) + p1 + p2


def group(*entries: bytes) -> bytes:
    body = b"".join(entries)
    return PROTOCOL + le32(len(body)) + body


def test_example_record_from_the_spec() -> None:
    k = key(5_000_123, 0)
    assert k[1:] == bytes.fromhex("00 00 00 00 00 4C 4B BB 00 00 00 00")
    value = bytes.fromhex("01 00 01 62 B0 00 DB 0F 0E 00 00 00 00 00 00 00 01 00 00 00 01 00 00 00 61 62")
    expected = HEADER + lp(k) + lp(value)
    out = sink()
    w = V1LogWriter(out)
    w.add(5_000_123, [set_value(b"a", b"b")])
    w.finish()
    assert out.getvalue() == expected
    assert list(iter_v1_log(BytesSource(expected), 1 << 20)) == [(5_000_123, [set_value(b"a", b"b")])]


def test_parts_and_unordered_records() -> None:
    big = b"v" * 9990  # the group is 12 + 12 + 1 + 9990 = 10,015 bytes: two parts
    g1 = group(entry(0, b"k", big))
    g2 = group(entry(1, b"a", b"c"), entry(2, b"n", le32(1)))
    assert len(g1) == 10_015
    records = [
        lp(key(3_000_000, 1)) + lp(g1[10_000:]),
        lp(key(2_999_999, 0)) + lp(g2),
        lp(key(3_000_000, 0)) + lp(g1[:10_000]),
    ]
    data = HEADER + b"".join(records)
    decoded = [(r.version, r.part) for r in decode_v1_log_block(data)]
    assert decoded == [(3_000_000, 1), (2_999_999, 0), (3_000_000, 0)]
    assert list(iter_v1_log(BytesSource(data), 1 << 20)) == [
        (2_999_999, [clear_range(b"a", b"c"), Mutation(2, b"n", le32(1))]),
        (3_000_000, [set_value(b"k", big)]),
    ]
    out = sink()
    w = V1LogWriter(out)
    w.add(3_000_000, [set_value(b"k", big)])
    w.finish()
    assert out.getvalue() == HEADER + records[2] + records[0]


def test_record_never_spans_blocks() -> None:
    rec1 = lp(key(1, 0)) + lp(group(entry(0, b"a", b"b")))
    rec2 = lp(key(2, 0)) + lp(group(entry(0, b"c", b"d")))
    bs = 4 + len(rec1) + 2
    out = sink()
    w = V1LogWriter(out, block_size=bs)
    w.add(1, [set_value(b"a", b"b")])
    w.add(2, [set_value(b"c", b"d")])
    w.finish()
    assert out.getvalue() == HEADER + rec1 + b"\xff\xff" + HEADER + rec2
    with pytest.raises(errors.BackupBadBlockSize):
        V1LogWriter(sink(), block_size=len(rec1) + 3).add(1, [set_value(b"a", b"b")])


def test_empty_file() -> None:
    out = sink()
    V1LogWriter(out).finish()
    assert out.getvalue() == b""
    assert list(iter_v1_log(BytesSource(b""), 1 << 20)) == []


def one_record(k: bytes, value: bytes) -> bytes:
    return HEADER + lp(k) + lp(value)


GOOD = group(entry(0, b"a", b"b"))
BAD_HASH_KEY = bytes([key(1, 0)[0] ^ 1]) + key(1, 0)[1:]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (le32(1001) + lp(key(1, 0)) + lp(GOOD), errors.RestoreUnsupportedFileVersion),
        (one_record(key(1, 0), GOOD) + b"\xff\x01", errors.RestoreCorruptedDataPadding),
        (one_record(key(1, 0), GOOD)[:-2], errors.RestoreCorruptedData),
        (one_record(key(1, 0)[:12], GOOD), errors.RestoreCorruptedData),  # 12-byte key
        (one_record(BAD_HASH_KEY, GOOD), errors.RestoreCorruptedData),
        (one_record(key(1, 0), le32(1) + le32(0) + GOOD[8:]), errors.IncompatibleProtocolVersion),
        (one_record(key(1, 0), GOOD[:-1]), errors.RestoreMissingData),  # totalBytes says more than there is
        (one_record(key(1, 0), GOOD + b"\x00"), errors.RestoreCorruptedData),  # bytes after the list
        (one_record(key(1, 1), GOOD), errors.RestoreMissingData),  # part 0 missing
        (one_record(key(1, 0), group(entry(24, b"a", b""))), errors.RestoreCorruptedData),  # bad type
        (one_record(key(1, 0), GOOD) + lp(key(1, 0)) + lp(GOOD), errors.RestoreCorruptedData),  # dup part
    ],
)
def test_corruption(data: bytes, error: type[errors.FDBError]) -> None:
    with pytest.raises(error):
        list(iter_v1_log(BytesSource(data), 1 << 20))


@given(st.lists(mutations, max_size=20))
def test_mutation_list_round_trip(ms: list[Mutation]) -> None:
    assert decode_mutation_list(encode_mutation_list(ms), "test") == ms


@given(
    st.dictionaries(st.integers(0, 10**12), st.lists(mutations, max_size=8), max_size=15),
    st.integers(0, 2**32 - 1),
    st.integers(1, 5),
)
def test_round_trip_in_any_order(groups: dict[int, list[Mutation]], seed: int, cached: int) -> None:
    order = list(groups)
    random.Random(seed).shuffle(order)
    bs = 4 + 8 + 13 + 10_000 + seed % 500  # a full 10,000-byte part always fits
    out = sink()
    w = V1LogWriter(out, block_size=bs)
    for v in order:
        w.add(v, groups[v])
    w.finish()
    assert list(iter_v1_log(BytesSource(out.getvalue()), bs, cached_blocks=cached)) == sorted(groups.items())


def test_long_group_spans_blocks_in_parts() -> None:
    ms = [set_value(bytes([i]) * 10, b"x" * 3000) for i in range(12)]  # about 36 KB: four parts
    out = sink()
    w = V1LogWriter(out, block_size=10_100)
    w.add(42, ms)
    w.finish()
    assert w.block_count == 4
    assert [r.part for r in decode_v1_log_block(out.getvalue()[:10_100])] == [0]
    assert log_record_key(42, 3) == key(42, 3)
    assert list(iter_v1_log(BytesSource(out.getvalue()), 10_100, cached_blocks=1)) == [(42, ms)]
