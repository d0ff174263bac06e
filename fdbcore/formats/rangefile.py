"""Range (KV snapshot) files, byte-compatible with FDB's ``RangeFileWriter`` (fdb-formats.md §2).

A file holds the KVs of one key range read at one version. Each block is: header 1001, the block's
begin key, KV pairs, and, in the last block only, the file's end key. When a block fills up, the next
one starts with the last KV of the previous block (as begin key and again as a KV), so that every
block can be restored on its own as "clear [begin, end), then set the data".

Deviation from FDB: FDB would start a second block with an empty key/value triple if the first KV did
not fit in the first block; we raise ``backup_bad_block_size`` instead (only tiny block sizes hit it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from fdbcore import errors
from fdbcore.formats.framing import (
    DEFAULT_BLOCK_SIZE,
    RANGE_FILE_VERSION,
    FramedWriter,
    at_block_end,
    check_header,
    check_padding,
    read_with_len,
)
from fdbcore.formats.io import ByteSource, Sink
from fdbcore.keys import KeyRange, printable

KV = tuple[bytes, bytes]


class RangeFileWriter(FramedWriter):
    """Streams one range file: construct with the begin key, :meth:`add` KVs in ascending order, then
    :meth:`finish` with the (exclusive) end key."""

    def __init__(self, sink: Sink, begin: bytes, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        super().__init__(sink, block_size, RANGE_FILE_VERSION)
        self._begin = begin
        self._last: KV | None = None
        self._finished = False
        self._make_room(4 + len(begin))
        self._w.append_with_len(begin)

    def add(self, key: bytes, value: bytes) -> None:
        if self._finished:
            raise errors.InternalError("range file already finished")
        if key < self._begin or (self._last is not None and key <= self._last[0]):
            raise errors.InternalError(f"range file keys must ascend from the begin key: {printable(key)}")
        self._make_room(8 + len(key) + len(value))
        self._w.append_with_len(key)
        self._w.append_with_len(value)
        self._last = (key, value)

    def finish(self, end: bytes) -> None:
        """Write the end key and the last (unpadded) block."""
        if self._finished:
            raise errors.InternalError("range file already finished")
        if end < self._begin or (self._last is not None and end <= self._last[0]):
            raise errors.InternalError(f"range file end key {printable(end)} is not after its keys")
        self._make_room(4 + len(end))
        self._w.append_with_len(end)
        self._w.finish()
        self._finished = True

    def _make_room(self, needed: int) -> None:
        if self._w.room() >= needed:
            return
        first = self._w.block_count == 0
        self._w.new_block()
        if not first:
            if self._last is None:
                raise errors.BackupBadBlockSize(
                    f"block size {self._w.block_size} is too small: the first KV does not fit in block 1"
                )
            key, value = self._last
            self._w.append_with_len(key)
            self._w.append_with_len(key)
            self._w.append_with_len(value)
        self._w.require(needed)


def write_range_file(
    sink: Sink, begin: bytes, kvs: Iterable[KV], end: bytes, block_size: int = DEFAULT_BLOCK_SIZE
) -> RangeFileWriter:
    """Write a whole range file; the returned (finished) writer reports bytes and blocks."""
    w = RangeFileWriter(sink, begin, block_size)
    for key, value in kvs:
        w.add(key, value)
    w.finish(end)
    return w


def decode_range_block(block: bytes, what: str = "range file block") -> list[KV]:
    """FDB's ``decodeRangeFileBlock``: ``[(begin, b""), (k, v)..., (last, b"" or v)]``.

    The last element is the file's end key (empty value) in the final block, and in other blocks the
    last real KV, which the next block repeats.
    """
    pos = check_header(block, RANGE_FILE_VERSION, what)
    begin, pos = read_with_len(block, pos, what)
    out: list[KV] = [(begin, b"")]
    while not at_block_end(block, pos):
        key, pos = read_with_len(block, pos, what)
        if at_block_end(block, pos):
            out.append((key, b""))
            break
        value, pos = read_with_len(block, pos, what)
        out.append((key, value))
    check_padding(block, pos, what)
    return out


@dataclass(frozen=True, slots=True)
class RangeBlock:
    """One block as restore applies it: clear ``range``, then set ``kvs``."""

    offset: int
    range: KeyRange
    kvs: list[KV]


def interpret_range_block(offset: int, block: bytes, what: str) -> RangeBlock:
    """Decode a block and split it as ``RestoreRangeTaskFunc`` does: first and last keys bound the
    range, the elements between them are the data. Data keys must ascend inside the range."""
    elements = decode_range_block(block, what)
    begin, end = elements[0][0], elements[-1][0]
    if begin > end:
        raise errors.RestoreCorruptedData(f"{what}: block begin {printable(begin)} is after its end {printable(end)}")
    kvs = elements[1:-1]
    prev = None
    for key, _ in kvs:
        if key < begin or key >= end or (prev is not None and key <= prev):
            raise errors.RestoreCorruptedData(f"{what}: key {printable(key)} out of order or outside the block")
        prev = key
    return RangeBlock(offset, KeyRange(begin, end), kvs)


def iter_range_file(source: ByteSource, block_size: int) -> Iterator[RangeBlock]:
    """Every block of a range file, checking that each block starts where the previous one ended."""
    if source.size == 0:
        raise errors.RestoreCorruptedData(f"{source.name}: range file is empty")
    prev_end: bytes | None = None
    for offset, block in source.blocks(block_size):
        what = f"{source.name} block at offset {offset}"
        rb = interpret_range_block(offset, block, what)
        if prev_end is not None and rb.range.begin != prev_end:
            raise errors.RestoreCorruptedData(
                f"{what}: begins at {printable(rb.range.begin)}, not where the last ended"
            )
        prev_end = rb.range.end
        yield rb
