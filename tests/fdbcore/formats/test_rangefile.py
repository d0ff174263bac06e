from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fdbcore import errors
from fdbcore.formats.io import BytesSource
from fdbcore.formats.rangefile import (
    RangeFileWriter,
    decode_range_block,
    iter_range_file,
    write_range_file,
)
from fdbcore.keys import KeyRange
from tests.fdbcore.formats.handmade import le32, lp, sink

HEADER = le32(1001)


def test_worked_example_from_the_spec() -> None:
    expected = bytes.fromhex("E9030000 00000000 00000001 61 00000001 31 00000001 FF")
    out = sink()
    w = write_range_file(out, b"", [(b"a", b"1")], b"\xff")
    assert out.getvalue() == expected
    assert (w.bytes_written, w.block_count) == (23, 1)
    assert decode_range_block(expected) == [(b"", b""), (b"a", b"1"), (b"\xff", b"")]


def test_multi_block_golden() -> None:
    # Block size 42: block 1 holds 39 bytes of items, the 5-byte end key does not fit, 3 bytes of padding.
    block1 = HEADER + lp(b"a") + lp(b"b") + lp(b"1") + lp(b"c") + lp(b"2") + lp(b"d") + lp(b"3") + b"\xff" * 3
    block2 = HEADER + lp(b"d") + lp(b"d") + lp(b"3") + lp(b"z")
    out = sink()
    w = write_range_file(out, b"a", [(b"b", b"1"), (b"c", b"2"), (b"d", b"3")], b"z", block_size=42)
    assert out.getvalue() == block1 + block2
    assert w.block_count == 2
    assert decode_range_block(block1) == [(b"a", b""), (b"b", b"1"), (b"c", b"2"), (b"d", b"3")]
    assert decode_range_block(block2) == [(b"d", b""), (b"d", b"3"), (b"z", b"")]
    blocks = list(iter_range_file(BytesSource(block1 + block2), 42))
    assert [(b.offset, b.range, b.kvs) for b in blocks] == [
        (0, KeyRange(b"a", b"d"), [(b"b", b"1"), (b"c", b"2")]),
        (42, KeyRange(b"d", b"z"), [(b"d", b"3")]),
    ]


def test_empty_file_is_header_begin_end() -> None:
    out = sink()
    write_range_file(out, b"k", [], b"k\x00")
    assert out.getvalue() == HEADER + lp(b"k") + lp(b"k\x00")
    [block] = iter_range_file(BytesSource(out.getvalue()), 1 << 20)
    assert block.range == KeyRange(b"k", b"k\x00") and block.kvs == []


def test_value_filling_the_block_exactly_and_one_byte_more() -> None:
    bs = 100
    out = sink()
    write_range_file(out, b"", [(b"a", b"v" * (bs - 22))], b"b", block_size=bs)
    assert len(out.getvalue()) == bs  # header 4 + begin 4 + KV (9 + v) + end 5
    with pytest.raises(errors.BackupBadBlockSize):  # end key spills: the new block repeats the big KV
        write_range_file(sink(), b"", [(b"a", b"v" * (bs - 21))], b"b", block_size=bs)


def test_item_larger_than_a_block_is_bad_block_size() -> None:
    w = RangeFileWriter(sink(), b"", block_size=64)
    w.add(b"a", b"1")
    with pytest.raises(errors.BackupBadBlockSize):
        w.add(b"b", b"x" * 100)


def test_keys_must_ascend_inside_the_range() -> None:
    w = RangeFileWriter(sink(), b"b")
    with pytest.raises(errors.InternalError):
        w.add(b"a", b"")
    w.add(b"c", b"")
    with pytest.raises(errors.InternalError):
        w.add(b"c", b"")
    with pytest.raises(errors.InternalError):
        w.finish(b"c")


def test_bad_header() -> None:
    with pytest.raises(errors.RestoreUnsupportedFileVersion):
        decode_range_block(le32(1002) + lp(b"") + lp(b"\xff"))


def test_padding_must_be_ff() -> None:
    block = HEADER + lp(b"a") + lp(b"b") + lp(b"1") + b"\xff\xff\x00\xff"
    with pytest.raises(errors.RestoreCorruptedDataPadding):
        decode_range_block(block)


@pytest.mark.parametrize("cut", [3, 6, 12, 17, 20, 22])
def test_truncation_is_corrupted_data(cut: int) -> None:
    whole = bytes.fromhex("E9030000 00000000 00000001 61 00000001 31 00000001 FF")
    with pytest.raises(errors.RestoreCorruptedData):
        list(iter_range_file(BytesSource(whole[:cut]), 1 << 20))


def test_empty_file_and_broken_chain_are_corrupted() -> None:
    with pytest.raises(errors.RestoreCorruptedData):
        list(iter_range_file(BytesSource(b""), 1024))
    block1 = HEADER + lp(b"a") + lp(b"b") + lp(b"1") + lp(b"c") + lp(b"2") + b"\xff" * 3
    block2 = HEADER + lp(b"x") + lp(b"x") + lp(b"2") + lp(b"z")
    with pytest.raises(errors.RestoreCorruptedData, match="not where the last ended"):
        list(iter_range_file(BytesSource(block1 + block2), len(block1)))


def test_out_of_order_data_is_corrupted() -> None:
    block = HEADER + lp(b"a") + lp(b"c") + lp(b"1") + lp(b"b") + lp(b"2") + lp(b"z")
    with pytest.raises(errors.RestoreCorruptedData, match="out of order"):
        list(iter_range_file(BytesSource(block), 1024))


keys = st.binary(max_size=12).map(lambda k: k if len(k) % 3 else k + b"\xff")  # plenty of 0xFF bytes


@st.composite
def range_files(draw: st.DrawFn) -> tuple[bytes, list[tuple[bytes, bytes]], bytes, int]:
    ks = sorted(set(draw(st.lists(keys, max_size=30))))
    begin = draw(st.sampled_from([b"", *ks[:1]]))
    end = (ks[-1] if ks else begin) + draw(st.sampled_from([b"\x00", b"\xff", b"\xff\xff"]))
    kvs = [(k, draw(st.binary(max_size=draw(st.sampled_from([0, 8, 300]))))) for k in ks]
    # Smallest block that always fits: a new block repeats the previous KV (key twice) before the next item.
    need = 4 + 4 + len(begin) + 4 + len(end)
    prev = None
    for k, v in kvs:
        need = max(need, 4 + 4 + len(begin) + 8 + len(k) + len(v))
        if prev is not None:
            need = max(need, 4 + 12 + 2 * len(prev[0]) + len(prev[1]) + 8 + len(k) + len(v))
        prev = (k, v)
    if prev is not None:
        need = max(need, 4 + 12 + 2 * len(prev[0]) + len(prev[1]) + 4 + len(end))
    return begin, kvs, end, draw(st.integers(need, need + 400))


@settings(max_examples=200)
@given(range_files())
def test_round_trip(case: tuple[bytes, list[tuple[bytes, bytes]], bytes, int]) -> None:
    begin, kvs, end, bs = case
    out = sink()
    w = write_range_file(out, begin, kvs, end, block_size=bs)
    data = out.getvalue()
    assert len(data) == w.bytes_written and -(-len(data) // bs) == w.block_count
    blocks = list(iter_range_file(BytesSource(data), bs))
    assert [kv for b in blocks for kv in b.kvs] == kvs
    assert blocks[0].range.begin == begin and blocks[-1].range.end == end
    for b in blocks[:-1]:
        assert decode_range_block(data[b.offset : b.offset + bs])[-1] == next(
            kv for kv in kvs if kv[0] == b.range.end
        )  # non-final blocks end on a real KV, which the next block repeats
