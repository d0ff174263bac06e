"""Container property files: ``properties/<name>`` version numbers and ``properties/encryption_metadata``.

Version properties are the bare ASCII decimal of an int64 (no newline); FDB reads them with
``sscanf("%lld%n")`` and requires the whole file to be consumed, else ``backup_invalid_info``.
The encryption metadata is compact JSON with ``is_encryption_enabled`` then ``encryption_block_size``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from fdbcore import errors

_INT64 = range(-(2**63), 2**63)
_DECIMAL = re.compile(rb"\s*[+-]?[0-9]+")  # what sscanf %lld accepts, leading whitespace included


def format_version_property(version: int) -> bytes:
    if version not in _INT64:
        raise errors.InternalError(f"version {version} is not an int64")
    return b"%d" % version


def parse_version_property(data: bytes, name: str = "version property") -> int:
    if not _DECIMAL.fullmatch(data) or int(data) not in _INT64:
        raise errors.BackupInvalidInfo(f"{name} does not hold a single int64: {data[:40]!r}")
    return int(data)


@dataclass(frozen=True, slots=True)
class EncryptionMetadata:
    enabled: bool = False
    block_size: int = 0

    def __post_init__(self) -> None:
        if not _consistent(self.enabled, self.block_size):
            raise errors.InvalidOptionValue(f"block size {self.block_size} with enabled={self.enabled}")

    def to_json(self) -> bytes:
        return b'{"is_encryption_enabled":%s,"encryption_block_size":%d}' % (
            b"true" if self.enabled else b"false",
            self.block_size,
        )


def _consistent(enabled: bool, block_size: int) -> bool:
    """Enabled needs a positive block size; disabled needs 0."""
    return block_size > 0 if enabled else block_size == 0


def parse_encryption_metadata(data: bytes, name: str = "properties/encryption_metadata") -> EncryptionMetadata:
    """Validate as FDB does; a missing file (handled by the caller) means "not encrypted"."""
    try:
        doc = json.loads(data)
    except ValueError:
        raise errors.FileCorrupt(f"{name} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise errors.FileCorrupt(f"{name} is not a JSON object")
    enabled = doc.get("is_encryption_enabled")
    block_size = doc.get("encryption_block_size")
    if not isinstance(enabled, bool) or isinstance(block_size, bool) or not isinstance(block_size, int):
        raise errors.FileCorrupt(f"{name} lacks is_encryption_enabled (bool) or encryption_block_size (int)")
    if not -(2**31) <= block_size < 2**31:
        raise errors.FileCorrupt(f"{name}: encryption_block_size {block_size} is not an int32")
    if not _consistent(enabled, block_size):
        raise errors.FileCorrupt(f"{name} is inconsistent: enabled={enabled}, block size {block_size}")
    return EncryptionMetadata(enabled, block_size)
