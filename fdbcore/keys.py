"""Keys and key ranges as FoundationDB defines them.

A key is ``bytes``; a range is half-open ``[begin, end)``. User keys live in ``['', '\\xff')``;
keys starting with ``\\xff`` are system keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fdbcore import errors

SYSTEM_PREFIX = b"\xff"
#: The end of the user key space (``normalKeys.end``) and the start of system keys.
USER_END = b"\xff"
#: The end of all keys, system keys included (``allKeys.end``).
ALL_END = b"\xff\xff"


def key_after(key: bytes) -> bytes:
    """The smallest key strictly greater than ``key`` (FDB ``keyAfter``)."""
    return key + b"\x00"


def strinc(prefix: bytes) -> bytes:
    """The first key that does not start with ``prefix`` (FDB ``strinc``)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        raise errors.KeyOutsideLegalRange(f"cannot increment key {printable(prefix)}")
    return stripped[:-1] + bytes([stripped[-1] + 1])


@dataclass(frozen=True, order=True, slots=True)
class KeyRange:
    """A half-open key range ``[begin, end)``; ``begin <= end`` always holds."""

    begin: bytes
    end: bytes

    def __post_init__(self) -> None:
        if self.begin > self.end:
            raise errors.InvertedRange(f"range begin {printable(self.begin)} is after its end {printable(self.end)}")

    @property
    def empty(self) -> bool:
        return self.begin == self.end

    def contains(self, key: bytes) -> bool:
        return self.begin <= key < self.end

    def contains_range(self, other: KeyRange) -> bool:
        return self.begin <= other.begin and other.end <= self.end

    def intersects(self, other: KeyRange) -> bool:
        return self.begin < other.end and other.begin < self.end

    def intersection(self, other: KeyRange) -> KeyRange | None:
        begin, end = max(self.begin, other.begin), min(self.end, other.end)
        return KeyRange(begin, end) if begin < end else None

    def __str__(self) -> str:
        return f"[{printable(self.begin)}, {printable(self.end)})"


@dataclass(frozen=True, slots=True)
class VersionedRange:
    """Keys in ``range`` hold data as of ``version`` (a piece of FDB's key-version map)."""

    range: KeyRange
    version: int


USER_KEYS = KeyRange(b"", USER_END)
ALL_KEYS = KeyRange(b"", ALL_END)


def normalize_ranges(ranges: Iterable[KeyRange]) -> list[KeyRange]:
    """Sort and merge overlapping or touching ranges; drop empty ones."""
    out: list[KeyRange] = []
    for r in sorted(r for r in ranges if not r.empty):
        if out and r.begin <= out[-1].end:
            if r.end > out[-1].end:
                out[-1] = KeyRange(out[-1].begin, r.end)
        else:
            out.append(r)
    return out


def subtract(want: Iterable[KeyRange], have: Iterable[KeyRange]) -> list[KeyRange]:
    """The parts of ``want`` that no range of ``have`` covers, in order."""
    holes = list(have)
    out = []
    for w in normalize_ranges(want):
        rest = [w]
        for h in holes:
            rest = [piece for r in rest for piece in _minus(r, h)]
        out += rest
    return out


def _minus(r: KeyRange, h: KeyRange) -> list[KeyRange]:
    if not r.intersects(h):
        return [r]
    out = []
    if r.begin < h.begin:
        out.append(KeyRange(r.begin, h.begin))
    if h.end < r.end:
        out.append(KeyRange(h.end, r.end))
    return out


def covers_exactly(pieces: Sequence[KeyRange], target: Sequence[KeyRange]) -> bool:
    """True when the union of ``pieces`` is exactly the union of ``target``."""
    return normalize_ranges(pieces) == normalize_ranges(target)


# --- printable / hex encodings --------------------------------------------------------------------


def printable(key: bytes) -> str:
    """FDB's ``printable()``: ASCII 32..126 as-is (backslash doubled), other bytes as ``\\xHH``."""
    out = []
    for b in key:
        if b == 0x5C:
            out.append("\\\\")
        elif 32 <= b < 127:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


def parse_printable(text: str) -> bytes:
    """Inverse of :func:`printable`, as ``fdbbackup -k`` and ``fdbcli`` read keys.

    Accepts ``\\xHH`` escapes and ``\\\\``; any other byte stands for itself.
    """
    out = bytearray()
    i = 0
    raw = text.encode("utf-8")
    while i < len(raw):
        c = raw[i]
        if c == 0x5C:
            if raw[i + 1 : i + 2] == b"\\":
                out.append(0x5C)
                i += 2
                continue
            if raw[i + 1 : i + 2] == b"x" and len(raw) >= i + 4:
                try:
                    out.append(int(raw[i + 2 : i + 4], 16))
                except ValueError:
                    raise errors.InvalidOptionValue(f"invalid escape in key {text!r}") from None
                i += 4
                continue
            raise errors.InvalidOptionValue(f"invalid escape in key {text!r}")
        out.append(c)
        i += 1
    return bytes(out)


def to_hex_plain(key: bytes) -> str:
    """FDB ``toFullHexStringPlain``: lowercase hex bytes separated by single spaces."""
    return " ".join(f"{b:02x}" for b in key)


def from_hex_plain(text: str) -> bytes:
    """Inverse of :func:`to_hex_plain`; FDB requires ``(len + 1) % 3 == 0``."""
    if text == "":
        return b""
    if (len(text) + 1) % 3 != 0:
        raise errors.BulkloadManifestDecodeError(f"malformed hex key {text!r}")
    try:
        parts = text.split(" ")
        if any(len(p) != 2 for p in parts):
            raise ValueError(text)
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise errors.BulkloadManifestDecodeError(f"malformed hex key {text!r}") from None


def parse_key_range_option(text: str) -> KeyRange:
    """Parse one ``-k "<BEGIN> <END>"`` option value (printable-escaped keys separated by a space)."""
    parts = text.split(" ")
    if len(parts) != 2:
        raise errors.InvalidOptionValue(f'key range {text!r} must be two keys separated by one space: "<BEGIN> <END>"')
    begin, end = parse_printable(parts[0]), parse_printable(parts[1])
    if begin >= end:
        raise errors.InvertedRange(f"key range {text!r} is empty or reversed: begin must sort before end")
    return KeyRange(begin, end)
