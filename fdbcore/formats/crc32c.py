"""CRC-32C (Castagnoli), as FDB's ``crc32c_append`` computes it, in pure Python.

No CRC-32C package is installed and mutation checksums are short, so a byte-wise table is enough.
``crc`` is the running value returned by a previous call (FDB seeds it with the mutation type).
"""

from __future__ import annotations


def _table() -> tuple[int, ...]:
    out = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        out.append(crc)
    return tuple(out)


_TABLE = _table()


def crc32c(data: bytes, crc: int = 0) -> int:
    crc ^= 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
