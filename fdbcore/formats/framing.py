"""Block framing shared by range files and mutation logs (fdb-formats.md §2.1, §3.1, §3.2, §9).

All three formats cut a file into blocks of a fixed size so that blocks can be read independently:
every block starts with a 4-byte little-endian version header, no item crosses a block boundary, and
the unused tail of every block but the last is 0xFF padding. A reader can tell padding from data
because every item starts with a big-endian length or version whose first byte is 0x00.
"""

from __future__ import annotations

import struct

from fdbcore import errors
from fdbcore.formats.io import Sink

RANGE_FILE_VERSION = 1001  # BACKUP_AGENT_SNAPSHOT_FILE_VERSION
V1_LOG_VERSION = 2001  # BACKUP_AGENT_MLOG_VERSION
PARTITIONED_LOG_VERSION = 4110  # PARTITIONED_MLOG_VERSION
#: BACKUP_RANGEFILE_BLOCK_SIZE, BACKUP_LOGFILE_BLOCK_SIZE and BACKUP_FILE_BLOCK_BYTES are all 1 MiB.
DEFAULT_BLOCK_SIZE = 1 << 20
PAD = 0xFF

_U32_LE = struct.Struct("<I")
_U32_BE = struct.Struct(">I")


class BlockWriter:
    """Lays items out in blocks; holds at most one block in memory and hands full blocks to the sink.

    The sink's lifecycle (finish/abort) stays with the caller.
    """

    def __init__(self, sink: Sink, block_size: int, version: int) -> None:
        if block_size <= 4:
            raise errors.BackupBadBlockSize(f"block size {block_size} cannot even hold a block header")
        self._sink = sink
        self.block_size = block_size
        self._header = _U32_LE.pack(version)
        self._buf = bytearray()
        self._flushed = 0
        self.block_count = 0

    @property
    def bytes_written(self) -> int:
        """Bytes produced so far, including the block still being filled."""
        return self._flushed + len(self._buf)

    def room(self) -> int:
        """Bytes left in the current block (0 before the first block)."""
        return self.block_count * self.block_size - self.bytes_written

    def new_block(self) -> None:
        """Pad the current block to its end, hand it to the sink, and start the next one with its header."""
        self._buf += b"\xff" * self.room()
        self._flush()
        self.block_count += 1
        self._buf += self._header

    def require(self, needed: int) -> None:
        if self.room() < needed:
            raise errors.BackupBadBlockSize(f"an item of {needed} bytes does not fit in a {self.block_size}-byte block")

    def reserve(self, needed: int) -> None:
        """Make sure the next ``needed`` bytes fit in the current block, starting a new one if not."""
        if self.room() < needed:
            self.new_block()
            self.require(needed)

    def append(self, data: bytes) -> None:
        self._buf += data

    def append_with_len(self, data: bytes) -> None:
        """A string with FDB's big-endian uint32 length prefix (``appendStringRefWithLen``)."""
        self._buf += _U32_BE.pack(len(data))
        self._buf += data

    def finish(self) -> None:
        """Write out the last block, unpadded."""
        self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._sink.write(bytes(self._buf))
            self._flushed += len(self._buf)
            self._buf.clear()


class FramedWriter:
    """Base of the format writers: owns the :class:`BlockWriter` and reports its counters."""

    def __init__(self, sink: Sink, block_size: int, version: int) -> None:
        self._w = BlockWriter(sink, block_size, version)

    @property
    def bytes_written(self) -> int:
        return self._w.bytes_written

    @property
    def block_count(self) -> int:
        return self._w.block_count


def check_header(block: bytes, version: int, what: str) -> int:
    """Validate a block's version header; returns the offset just after it."""
    if len(block) < 4:
        raise errors.RestoreCorruptedData(f"{what}: block of {len(block)} bytes has no header")
    found = _U32_LE.unpack_from(block)[0]
    if found != version:
        raise errors.RestoreUnsupportedFileVersion(f"{what}: block header is {found}, expected {version}")
    return 4


def at_block_end(block: bytes, pos: int) -> bool:
    """True at the end of the block or at the start of its padding."""
    return pos >= len(block) or block[pos] == PAD


def read_with_len(block: bytes, pos: int, what: str) -> tuple[bytes, int]:
    """A BE-length-prefixed string at ``pos``; returns it and the offset after it."""
    end = pos + 4
    if end > len(block):
        raise errors.RestoreCorruptedData(f"{what}: length prefix at offset {pos} runs past the block end")
    n = _U32_BE.unpack_from(block, pos)[0]
    stop = end + n
    if stop > len(block):
        raise errors.RestoreCorruptedData(f"{what}: {n}-byte string at offset {pos} runs past the block end")
    return block[end:stop], stop


def check_padding(block: bytes, pos: int, what: str) -> None:
    tail = block[pos:]
    if tail.count(PAD) != len(tail):
        raise errors.RestoreCorruptedDataPadding(f"{what}: non-0xFF byte in the padding after offset {pos}")
