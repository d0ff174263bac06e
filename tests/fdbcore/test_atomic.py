"""FDB atomic-op semantics (fdbcore.atomic) against hand-checked cases and a byte-loop oracle.

The oracle below follows the structure of FDB's ``Atomic.h`` (byte loops with explicit carries and
high-to-low comparisons), independently of the integer arithmetic ``fdbcore.atomic`` uses, and
hypothesis checks the two agree on arbitrary inputs.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fdbcore import errors
from fdbcore.atomic import (
    VALUE_SIZE_LIMIT,
    apply_atomic,
    check_versionstamp_param,
    place_versionstamp,
    versionstamp,
)
from fdbcore.mutations import MutationType as T

# --- oracle: byte loops in the style of Atomic.h --------------------------------------------------


def _o_add(old: bytes | None, p: bytes) -> bytes:
    e = old or b""
    if not e or not p:
        return p
    out, carry = bytearray(), 0
    for i in range(len(p)):
        s = p[i] + (e[i] if i < len(e) else 0) + carry
        out.append(s & 0xFF)
        carry = s >> 8
    return bytes(out)


def _o_bitwise(old: bytes | None, p: bytes, fn, fill_from_param: bool) -> bytes:
    e = old or b""
    out = bytearray()
    for i in range(len(p)):
        if i < len(e):
            out.append(fn(e[i], p[i]))
        else:
            out.append(p[i] if fill_from_param else 0)
    return bytes(out)


def _o_fit(e: bytes, width: int) -> bytes:
    return bytes(e[i] if i < len(e) else 0 for i in range(width))


def _o_max(old: bytes | None, p: bytes) -> bytes:
    e = old or b""
    if not e or not p:
        return p
    i = len(p) - 1
    while i >= len(e):
        if p[i] != 0:
            return p
        i -= 1
    while i >= 0:
        if p[i] > e[i]:
            return p
        if p[i] < e[i]:
            return _o_fit(e, len(p))
        i -= 1
    return p


def _o_min(old: bytes | None, p: bytes) -> bytes:
    if not p:
        return p
    e = old or b""
    i = len(p) - 1
    while i >= len(e):
        if p[i] != 0:
            return _o_fit(e, len(p))
        i -= 1
    while i >= 0:
        if p[i] > e[i]:
            return _o_fit(e, len(p))
        if p[i] < e[i]:
            return p
        i -= 1
    return p


def oracle(op: int, old: bytes | None, p: bytes) -> bytes | None:
    e = old or b""
    if op == T.ADD_VALUE:
        return _o_add(old, p)
    if op == T.AND:
        return p if not p else _o_bitwise(old, p, lambda a, b: a & b, False)
    if op == T.AND_V2:
        return p if old is None else oracle(T.AND, old, p)
    if op == T.OR:
        return p if not e or not p else _o_bitwise(old, p, lambda a, b: a | b, True)
    if op == T.XOR:
        return p if not e or not p else _o_bitwise(old, p, lambda a, b: a ^ b, True)
    if op == T.APPEND_IF_FITS:
        if not e:
            return p
        if not p or len(e) + len(p) > VALUE_SIZE_LIMIT:
            return e
        return e + p
    if op == T.MAX:
        return _o_max(old, p)
    if op == T.MIN:
        return _o_min(old, p)
    if op == T.MIN_V2:
        return p if old is None else _o_min(old, p)
    if op == T.BYTE_MIN:
        return p if old is None else (old if old < p else p)
    if op == T.BYTE_MAX:
        return p if old is None else (old if old > p else p)
    if op == T.COMPARE_AND_CLEAR:
        return None if old is None or old == p else old
    raise AssertionError(op)


VALUE_OPS = [
    T.ADD_VALUE,
    T.AND,
    T.AND_V2,
    T.OR,
    T.XOR,
    T.APPEND_IF_FITS,
    T.MAX,
    T.MIN,
    T.MIN_V2,
    T.BYTE_MIN,
    T.BYTE_MAX,
    T.COMPARE_AND_CLEAR,
]

small_bytes = st.binary(max_size=9)


@settings(max_examples=3000, deadline=None)
@given(op=st.sampled_from(VALUE_OPS), old=st.none() | small_bytes, param=small_bytes)
def test_matches_byte_loop_oracle(op: int, old: bytes | None, param: bytes) -> None:
    assert apply_atomic(op, old, param) == oracle(op, old, param)


def le(n: int, width: int) -> bytes:
    return n.to_bytes(width, "little")


@pytest.mark.parametrize(
    ("op", "old", "param", "expected"),
    [
        # add: little-endian, result has the operand's length, carry out of the top byte is lost
        (T.ADD_VALUE, le(5, 8), le(7, 8), le(12, 8)),
        (T.ADD_VALUE, None, le(7, 8), le(7, 8)),
        (T.ADD_VALUE, b"\xff\xff", b"\x01", b"\x00"),  # existing truncated to 1 byte, wraps
        (T.ADD_VALUE, b"\xff", b"\x01\x00", b"\x00\x01"),  # existing zero-extended, carry kept
        (T.ADD_VALUE, le(5, 8), b"", b""),
        (T.ADD_VALUE, b"", b"\x09", b"\x09"),
        # and (V1) vs and_v2 on a missing key
        (T.AND, None, b"\xff\x0f", b"\x00\x00"),
        (T.AND_V2, None, b"\xff\x0f", b"\xff\x0f"),
        (T.AND_V2, b"\x3c", b"\x0f\xff", b"\x0c\x00"),
        (T.AND_V2, b"", b"\x0f", b"\x00"),  # present but empty: and, not the V2 shortcut
        # or / xor: bytes of the operand past the existing value are copied
        (T.OR, b"\x01", b"\x02\x05", b"\x03\x05"),
        (T.XOR, b"\x03\x03\x03", b"\x01\x01", b"\x02\x02"),
        (T.XOR, None, b"\x01", b"\x01"),
        # append_if_fits
        (T.APPEND_IF_FITS, b"ab", b"cd", b"abcd"),
        (T.APPEND_IF_FITS, None, b"cd", b"cd"),
        (T.APPEND_IF_FITS, b"x" * 99_999, b"yz", b"x" * 99_999),
        (T.APPEND_IF_FITS, b"x" * 99_998, b"yz", b"x" * 99_998 + b"yz"),
        # max / min as little-endian unsigned integers at the operand's width
        (T.MAX, le(300, 2), le(299, 2), le(300, 2)),
        (T.MAX, le(300, 2), le(301, 2), le(301, 2)),
        (T.MAX, le(0x0201, 2), b"\x05", b"\x05"),  # existing truncated to the operand's width: 1 < 5
        (T.MAX, le(0x0209, 2), b"\x05", b"\x09"),  # ... and the truncated existing value wins
        (T.MAX, None, le(3, 2), le(3, 2)),
        (T.MIN, le(300, 2), le(299, 2), le(299, 2)),
        (T.MIN, le(300, 2), le(301, 2), le(300, 2)),
        (T.MIN, None, le(7, 2), b"\x00\x00"),  # V1: missing counts as zero
        (T.MIN_V2, None, le(7, 2), le(7, 2)),  # V2: missing takes the operand
        (T.MIN_V2, b"\x05", le(0x0100, 2), b"\x05\x00"),
        # byte_min / byte_max: lexicographic
        (T.BYTE_MIN, b"abc", b"abd", b"abc"),
        (T.BYTE_MIN, b"ab", b"abc", b"ab"),
        (T.BYTE_MIN, None, b"zz", b"zz"),
        (T.BYTE_MAX, b"abc", b"abd", b"abd"),
        (T.BYTE_MAX, b"b", b"abc", b"b"),
        (T.BYTE_MAX, None, b"", b""),
        # compare_and_clear
        (T.COMPARE_AND_CLEAR, b"v", b"v", None),
        (T.COMPARE_AND_CLEAR, b"v", b"w", b"v"),
        (T.COMPARE_AND_CLEAR, None, b"v", None),
    ],
)
def test_known_cases(op: int, old: bytes | None, param: bytes, expected: bytes | None) -> None:
    assert apply_atomic(op, old, param) == expected


def test_non_value_ops_are_rejected() -> None:
    for op in (T.SET_VALUE, T.CLEAR_RANGE, T.SET_VERSIONSTAMPED_KEY, T.DEBUG_KEY):
        with pytest.raises(errors.InvalidMutationType):
            apply_atomic(op, b"", b"x")


def test_versionstamp_layout() -> None:
    stamp = versionstamp(0x0102030405060708, 0x090A)
    assert stamp == bytes(range(1, 11))
    assert versionstamp(5) == b"\x00" * 7 + b"\x05\x00\x00"


def test_place_versionstamp_uses_little_endian_offset_suffix() -> None:
    stamp = versionstamp(0x1122334455667788, 0)
    param = b"pre" + b"\x00" * 10 + b"post" + struct.pack("<i", 3)
    assert place_versionstamp(param, stamp) == b"pre" + stamp + b"post"
    assert place_versionstamp(b"\x00" * 10 + struct.pack("<i", 0), stamp) == stamp


@pytest.mark.parametrize(
    "param",
    [
        b"abc",  # shorter than the offset suffix
        b"\x00" * 9 + struct.pack("<i", 0),  # 10 bytes do not fit
        b"\x00" * 12 + struct.pack("<i", 3),  # 3 + 10 > 12
        b"\x00" * 12 + struct.pack("<i", -1),
    ],
)
def test_bad_versionstamp_offsets(param: bytes) -> None:
    with pytest.raises(errors.ClientInvalidOperation):
        check_versionstamp_param(param, "key")
