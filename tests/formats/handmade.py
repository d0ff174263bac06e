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
