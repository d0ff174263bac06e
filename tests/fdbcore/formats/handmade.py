"""Tiny byte-building helpers for golden tests, written from the spec rather than from our encoders."""

from __future__ import annotations

import io


def be32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def le32(n: int) -> bytes:
    return n.to_bytes(4, "little")


def lp(data: bytes) -> bytes:
    """A string with a big-endian uint32 length prefix (range files, V1 logs)."""
    return be32(len(data)) + data


def le_lp(data: bytes) -> bytes:
    """A string with a little-endian uint32 length prefix (MutationRef params)."""
    return le32(len(data)) + data


def sink() -> io.BytesIO:
    return io.BytesIO()


def be64(n: int) -> bytes:
    return n.to_bytes(8, "big", signed=True)


def _rot(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & 0xFFFFFFFF


def hashlittle_of_word(word: int) -> int:
    """lookup3 ``hashlittle`` of one 32-bit LE word with initval 0, step by step as §3.1 spells it out."""
    regs = {"a": (0xDEADBEEF + 4 + word) & 0xFFFFFFFF, "b": 0xDEADBEEF + 4, "c": 0xDEADBEEF + 4}
    steps = [("c", "b", 14), ("a", "c", 11), ("b", "a", 25), ("c", "b", 16), ("a", "c", 4), ("b", "a", 14)]
    for x, y, r in [*steps, ("c", "b", 24)]:
        regs[x] = ((regs[x] ^ regs[y]) - _rot(regs[y], r)) & 0xFFFFFFFF
    return regs["c"]
