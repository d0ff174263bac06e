"""FoundationDB's atomic operations as pure functions over byte strings.

The storage server resolves an atomic mutation against the key's current value (``None`` when the key
is absent); this module reproduces FDB's rules (``fdbclient/include/fdbclient/Atomic.h`` and the
storage server's ``convertAtomicOp``) byte for byte, including the quirks that differ between the
original operations and their V2 replacements:

- ``And``/``Min`` (V1) treat a missing value as the empty string, so ``And`` on a missing key yields
  zeros and ``Min`` yields zeros (unless the operand is all zeros). ``AndV2``/``MinV2`` store the
  operand instead. Clients at API version >= 510 only ever send the V2 forms.
- Integer ops (add, max, min, and/or/xor) work on little-endian byte strings and the result has the
  length of the *operand*: a shorter existing value is zero-extended, a longer one truncated.
- ``CompareAndClear`` clears the key when the existing value equals the operand (an absent key stays
  absent); it is the only op whose result can be "no value".

Versionstamp placement (``SetVersionstampedKey``/``Value``) is here too, since it is the other piece of
mutation rewriting a commit does.
"""

from __future__ import annotations

import struct

from fdbcore import errors
from fdbcore.mutations import MutationType

#: ``CLIENT_KNOBS->VALUE_SIZE_LIMIT``; ``AppendIfFits`` leaves the value alone rather than exceed it.
VALUE_SIZE_LIMIT = 100_000
#: A versionstamp: 8-byte big-endian commit version then 2-byte big-endian transaction number.
VERSIONSTAMP_SIZE = 10


def _uint(data: bytes, width: int) -> int:
    """``data`` as a little-endian unsigned integer of ``width`` bytes (truncated or zero-extended)."""
    return int.from_bytes(data[:width], "little")


def _to_bytes(n: int, width: int) -> bytes:
    return (n & ((1 << (8 * width)) - 1)).to_bytes(width, "little")


def _max(old: bytes, param: bytes) -> bytes:
    if not old or not param:
        return param
    width = len(param)
    return _to_bytes(_uint(old, width), width) if _uint(old, width) > _uint(param, width) else param


def _min(old: bytes, param: bytes) -> bytes:
    # Unlike max, FDB's min has no "empty existing value" shortcut: an empty value counts as zero.
    if not param:
        return param
    width = len(param)
    return _to_bytes(_uint(old, width), width) if _uint(param, width) > _uint(old, width) else param


def _and(old: bytes, param: bytes) -> bytes:
    width = len(param)
    return _to_bytes(_uint(old, width) & _uint(param, width), width)


def apply_atomic(op: int, old: bytes | None, param: bytes) -> bytes | None:
    """The value a key holds after atomic ``op`` with operand ``param`` is applied to ``old``.

    ``old`` is ``None`` for an absent key; a ``None`` result means the key is cleared (only
    ``CompareAndClear`` produces it). Versionstamped ops are not value transforms and are rejected
    here; use :func:`place_versionstamp_in_key` / :func:`place_versionstamp_in_value`.
    """
    present = old is not None
    cur = old if old is not None else b""
    width = len(param)
    if op == MutationType.ADD_VALUE:
        return param if not cur or not param else _to_bytes(_uint(cur, width) + _uint(param, width), width)
    if op == MutationType.AND:
        return _and(cur, param) if param else param
    if op == MutationType.AND_V2:
        return _and(cur, param) if present and param else param
    if op == MutationType.OR:
        return param if not cur or not param else _to_bytes(_uint(cur, width) | _uint(param, width), width)
    if op == MutationType.XOR:
        return param if not cur or not param else _to_bytes(_uint(cur, width) ^ _uint(param, width), width)
    if op == MutationType.APPEND_IF_FITS:
        if not cur:
            return param
        if not param or len(cur) + len(param) > VALUE_SIZE_LIMIT:
            return cur
        return cur + param
    if op == MutationType.MAX:
        return _max(cur, param)
    if op == MutationType.MIN:
        return _min(cur, param)
    if op == MutationType.MIN_V2:
        return _min(cur, param) if present else param
    if op == MutationType.BYTE_MIN:
        return cur if present and cur < param else param
    if op == MutationType.BYTE_MAX:
        return cur if present and cur > param else param
    if op == MutationType.COMPARE_AND_CLEAR:
        return None if not present or cur == param else old
    raise errors.InvalidMutationType(f"mutation type {op} is not a value-transforming atomic operation")


# --- versionstamps --------------------------------------------------------------------------------


def versionstamp(version: int, transaction_number: int = 0) -> bytes:
    """The 10-byte versionstamp of a commit: big-endian version then big-endian transaction number."""
    return struct.pack(">QH", version, transaction_number)


def _split_offset(param: bytes, what: str) -> tuple[bytes, int]:
    """Split FDB's 4-byte little-endian position suffix off ``param`` and check the stamp fits."""
    if len(param) < 4:
        raise errors.ClientInvalidOperation(f"versionstamped {what} is shorter than its 4-byte offset suffix")
    body = param[:-4]
    (pos,) = struct.unpack("<i", param[-4:])
    if pos < 0 or pos + VERSIONSTAMP_SIZE > len(body):
        raise errors.ClientInvalidOperation(
            f"versionstamp offset {pos} does not leave 10 bytes inside the {len(body)}-byte {what}"
        )
    return body, pos


def check_versionstamp_param(param: bytes, what: str) -> None:
    """Raise ``client_invalid_operation`` when a versionstamped key/value has no valid placeholder."""
    _split_offset(param, what)


def place_versionstamp(param: bytes, stamp: bytes, what: str = "key") -> bytes:
    """Strip the offset suffix from ``param`` and write ``stamp`` at that offset."""
    body, pos = _split_offset(param, what)
    return body[:pos] + stamp + body[pos + VERSIONSTAMP_SIZE :]
