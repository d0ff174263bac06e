from __future__ import annotations

import pytest

from fdbcore import errors
from fdbcore.formats.io import BytesSource, ContainerSource, LocalFileSource


class ShortReadingContainer:
    """Duck-typed container whose reads come back one byte short, like a cut-off download."""

    def size(self, path: str) -> int:
        return 100

    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        return b"\x00" * max(0, (length or 0) - 1)


def test_container_short_read_is_an_error() -> None:
    src = ContainerSource(ShortReadingContainer(), "logs/x")  # type: ignore[arg-type]
    with pytest.raises(errors.RestoreBadRead, match="short read"):
        src.read(0, 10)


def test_read_past_end_is_an_error() -> None:
    with pytest.raises(errors.RestoreBadRead):
        BytesSource(b"abc").read(2, 2)
    assert BytesSource(b"abc").read(3, 0) == b""


def test_blocks_cover_the_file_and_leave_the_last_short(tmp_path) -> None:
    path = tmp_path / "f"
    path.write_bytes(bytes(range(10)))
    src = LocalFileSource(path)
    assert list(src.blocks(4)) == [(0, bytes([0, 1, 2, 3])), (4, bytes([4, 5, 6, 7])), (8, bytes([8, 9]))]
    path.write_bytes(b"")  # shrank after the size was taken
    with pytest.raises(errors.RestoreBadRead):
        src.read(0, 4)
