"""Container property files: ``properties/<name>`` version numbers and ``properties/encryption_metadata``.

Version properties are the bare ASCII decimal of an int64 (no newline); FDB reads them with
``sscanf("%lld%n")`` and requires the whole file to be consumed, else ``backup_invalid_info``.
The encryption metadata is compact JSON with ``is_encryption_enabled`` then ``encryption_block_size``;
an encrypted backup adds ``format_version`` (FDB's planned property, #13751: 2 = every block carries its
GCM tag). A reader takes an encrypted backup without it for one written before the tags.
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
    #: The encrypted format's version; None: not recorded (a backup from before FDB's GCM tags).
    format_version: int | None = None

    def __post_init__(self) -> None:
        if not _consistent(self.enabled, self.block_size) or (self.format_version is not None and not self.enabled):
            raise errors.InvalidOptionValue(
                f"block size {self.block_size}, format {self.format_version} with enabled={self.enabled}"
            )

    def to_json(self) -> bytes:
        text = b'{"is_encryption_enabled":%s,"encryption_block_size":%d' % (
            b"true" if self.enabled else b"false",
            self.block_size,
        )
        if self.format_version is not None:
            text += b',"format_version":%d' % self.format_version
        return text + b"}"


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
    version = doc.get("format_version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or not enabled):
        raise errors.FileCorrupt(f"{name}: format_version {version!r} is not an integer of an encrypted backup")
    return EncryptionMetadata(enabled, block_size, version)
