"""Backup containers: where backups live, behind one contract (:mod:`fdbcore.container.base`).

``open_container(url)`` picks the backend by the URL's scheme: ``file://`` is a local directory,
``blobstore://`` an S3 bucket (AWS or S3-compatible; its module, and boto3, load on first use, so
that processes that only touch local files, such as a cluster's worker processes, do not pay for
them). With a ``cipher`` the backend is wrapped in an :class:`EncryptedContainer` (file-level
encryption).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fdbcore.container.base import BackupContainer, ContainerWriter, FileInfo, check_path
from fdbcore.container.encrypted import EncryptedContainer
from fdbcore.container.local import LocalContainer
from fdbcore.container.url import (
    BlobstoreUrl,
    FileUrl,
    parse_url,
    redact_url,
    start_backup_url,
    with_name,
    without_secret,
)
from fdbcore.encryption import FileCipher

if TYPE_CHECKING:
    from fdbcore.container.s3 import S3Container

__all__ = [
    "BackupContainer",
    "BlobstoreUrl",
    "ContainerWriter",
    "EncryptedContainer",
    "FileInfo",
    "FileUrl",
    "LocalContainer",
    "check_path",
    "list_backups",
    "open_container",
    "parse_url",
    "redact_url",
    "start_backup_url",
    "with_name",
    "without_secret",
]


def _s3(url: BlobstoreUrl, credential_files: Sequence[str]) -> S3Container:
    """An S3 container; its module (and boto3, 0.06-0.2 s to import) is loaded on the first call."""
    from fdbcore.container.s3 import S3Container

    return S3Container(url, blob_credentials=credential_files)


def list_backups(base_url: str, *, credential_files: Sequence[str] = ()) -> list[str]:
    """URLs of the backups under a base URL, as ``fdbbackup list -b`` prints them.

    A ``file://`` base holds ``backup-<timestamp>`` folders; a blobstore base lists the bucket's index
    objects (``backups/<name>``) whose names start with the base URL's name.
    """
    parsed = parse_url(base_url)
    if isinstance(parsed, FileUrl):
        root = Path(parsed.path)
        if not root.is_dir():
            return []
        return sorted(f"file://{p}" for p in root.iterdir() if p.is_dir() and p.name.startswith("backup-"))
    names = _s3(parsed, credential_files).backup_names()
    return [with_name(base_url, name) for name in sorted(names)]


def open_container(
    url: str, *, credential_files: Sequence[str] = (), cipher: FileCipher | None = None
) -> BackupContainer:
    """The container a URL names. Nothing is contacted yet; ``credential_files`` are the
    ``--blob-credentials`` files (``FDB_BLOB_CREDENTIALS`` is always consulted as well); ``cipher``
    encrypts and decrypts its files."""
    parsed = parse_url(url)
    inner: BackupContainer
    if isinstance(parsed, FileUrl):
        inner = LocalContainer(parsed.path)
    else:
        inner = _s3(parsed, credential_files)
    return inner if cipher is None else EncryptedContainer(inner, cipher)
