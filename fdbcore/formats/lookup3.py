"""Bob Jenkins' lookup3 ``hashlittle`` / ``hashlittle2`` (public domain; FDB's ``flow/Hash3.c``).

FDB uses ``hashlittle`` for the first byte of V1 mutation-log keys and ``hashlittle2`` to decide which
keys go into a byte sample. Written from the published algorithm; the little-endian tail handling is
the same for aligned and unaligned input, so one byte-oriented version serves both.
"""

from __future__ import annotations

import struct

_M = 0xFFFFFFFF
_WORDS = struct.Struct("<3I")


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    a = ((a - c) & _M) ^ _rot(c, 4)
    c = (c + b) & _M
    b = ((b - a) & _M) ^ _rot(a, 6)
    a = (a + c) & _M
    c = ((c - b) & _M) ^ _rot(b, 8)
    b = (b + a) & _M
    a = ((a - c) & _M) ^ _rot(c, 16)
    c = (c + b) & _M
    b = ((b - a) & _M) ^ _rot(a, 19)
    a = (a + c) & _M
    c = ((c - b) & _M) ^ _rot(b, 4)
    b = (b + a) & _M
    return a, b, c


def _final(a: int, b: int, c: int) -> tuple[int, int, int]:
    c = ((c ^ b) - _rot(b, 14)) & _M
    a = ((a ^ c) - _rot(c, 11)) & _M
    b = ((b ^ a) - _rot(a, 25)) & _M
    c = ((c ^ b) - _rot(b, 16)) & _M
    a = ((a ^ c) - _rot(c, 4)) & _M
    b = ((b ^ a) - _rot(a, 14)) & _M
    c = ((c ^ b) - _rot(b, 24)) & _M
    return a, b, c


def hashlittle2(key: bytes, pc: int = 0, pb: int = 0) -> tuple[int, int]:
    """Returns ``(c, b)``: lookup3's two 32-bit results (``*pc``, ``*pb`` on return)."""
    n = len(key)
    a = b = c = (0xDEADBEEF + n + pc) & _M
    c = (c + pb) & _M
    pos = 0
    while n - pos > 12:
        k0, k1, k2 = _WORDS.unpack_from(key, pos)
        a, b, c = _mix((a + k0) & _M, (b + k1) & _M, (c + k2) & _M)
        pos += 12
    if pos == n:
        return c, b
    k0, k1, k2 = _WORDS.unpack(key[pos:].ljust(12, b"\x00"))
    a, b, c = _final((a + k0) & _M, (b + k1) & _M, (c + k2) & _M)
    return c, b


def hashlittle(key: bytes, initval: int = 0) -> int:
    return hashlittle2(key, initval, 0)[0]
