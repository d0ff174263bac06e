"""What a job record keeps about its backup's file-level encryption: never the key, only where every
agent finds it, the block size, and the key's check value (:class:`fdbcore.encryption.EncryptionSettings`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from fdbcore.encryption import EncryptionSettings
from workers.record import Record


@dataclass(frozen=True, kw_only=True)
class EncryptedJob(Record):
    """Fields shared by backup and restore records; empty when the backup is not encrypted."""

    encryption_key_file: str = ""
    encryption_block_size: int = 0
    encryption_key_check: str = ""

    @property
    def encryption(self) -> EncryptionSettings | None:
        if not self.encryption_key_file:
            return None
        return EncryptionSettings(self.encryption_key_file, self.encryption_block_size, self.encryption_key_check)


def encryption_fields(settings: EncryptionSettings | None) -> dict[str, Any]:
    """The :class:`EncryptedJob` fields for ``settings``."""
    if settings is None:
        return {}
    return {
        "encryption_key_file": settings.key_file,
        "encryption_block_size": settings.block_size,
        "encryption_key_check": settings.key_check,
    }


class StoredJob(Protocol):
    """What a worker needs to open a job's container."""

    @property
    def url(self) -> str: ...

    @property
    def credential_files(self) -> list[str]: ...

    @property
    def encryption(self) -> EncryptionSettings | None: ...
