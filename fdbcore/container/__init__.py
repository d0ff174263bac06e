"""Backup containers: where backups live, behind one contract (:mod:`fdbcore.container.base`).

``open_container(url)`` picks the backend by the URL's scheme: ``file://`` is a local directory,
``blobstore://`` an S3 bucket (AWS or S3-compatible).
"""

from __future__ import annotations

from collections.abc import Sequence

from fdbcore.container.base import BackupContainer, ContainerWriter, FileInfo, check_path
from fdbcore.container.local import LocalContainer
from fdbcore.container.s3 import S3Container
from fdbcore.container.url import (
    BlobstoreUrl,
    FileUrl,
    parse_url,
    redact_url,
    start_backup_url,
)

__all__ = [
    "BackupContainer",
    "BlobstoreUrl",
    "ContainerWriter",
    "FileInfo",
    "FileUrl",
    "LocalContainer",
    "S3Container",
    "check_path",
    "open_container",
    "parse_url",
    "redact_url",
    "start_backup_url",
]


def open_container(url: str, *, credential_files: Sequence[str] = ()) -> BackupContainer:
    """The container a URL names. Nothing is contacted yet; ``credential_files`` are the
    ``--blob-credentials`` files (``FDB_BLOB_CREDENTIALS`` is always consulted as well)."""
    parsed = parse_url(url)
    if isinstance(parsed, FileUrl):
        return LocalContainer(parsed.path)
    return S3Container(parsed, blob_credentials=credential_files)
