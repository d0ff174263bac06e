"""Opening a backup with the key it needs: FDB's checks, in one place for every command.

``properties/encryption_metadata`` says whether a backup is encrypted (it stays plaintext). A command
that reads file contents (``fdbrestore start``, ``describe``, ``dump``, ``expire``) then needs the key
file exactly when the backup is encrypted, as ``FileBackupAgent`` demands: a key for a plain backup, or
none for an encrypted one, is ``restore_error`` with FDB's message. A wrong key fails the first block it
decrypts (``restore_corrupted_data`` with FDB's hint). A backup encrypted before FDB added GCM tags
(no ``format_version``) cannot be authenticated, so it is refused by name rather than read unchecked.
"""

from __future__ import annotations

from collections.abc import Sequence

from fdbcore import errors, naming
from fdbcore.catalog import Catalog
from fdbcore.container import BackupContainer, EncryptedContainer, open_container
from fdbcore.encryption import KEY_HINT, TAGGED_FORMAT, EncryptionSettings, FileCipher, read_key_file
from fdbcore.formats.properties import EncryptionMetadata


def metadata_for(settings: EncryptionSettings | None) -> EncryptionMetadata:
    """What ``properties/encryption_metadata`` says about a backup written with ``settings``."""
    if settings is None:
        return EncryptionMetadata()
    return EncryptionMetadata(True, settings.block_size, TAGGED_FORMAT)


def encryption_of(container: BackupContainer) -> EncryptionMetadata:
    return Catalog(container).encryption()


def key_required(url: str) -> errors.FDBError:
    return errors.RestoreError(
        f"Backup is encrypted, please provide the encryption key file path (--encryption-key-file) for {url}. "
        "Verify that backup and restore encryption keys match"
    )


def unlock(container: BackupContainer, meta: EncryptionMetadata, key_file: str | None) -> BackupContainer:
    """``container`` ready to read: decrypting when ``meta`` says it is encrypted (``key_file`` then
    required, and must not be given otherwise)."""
    if not meta.enabled:
        if key_file is not None:
            raise errors.RestoreError(
                f"Backup is not encrypted, please remove the encryption key file path ({container.url})"
            )
        return container
    if key_file is None:
        raise key_required(container.url)
    if meta.format_version != TAGGED_FORMAT:
        what = "no format_version" if meta.format_version is None else f"format_version {meta.format_version}"
        raise errors.RestoreUnsupportedFileVersion(
            f"the backup at {container.url} is encrypted in a format this reader does not authenticate "
            f"({what} in {naming.property_path(naming.ENCRYPTION_METADATA)}; files without GCM tags, written before "
            f"FDB's format version {TAGGED_FORMAT}, cannot be checked and are not read)"
        )
    return EncryptedContainer(container, FileCipher(read_key_file(key_file), meta.block_size))


def open_backup(url: str, *, credential_files: Sequence[str] = (), key_file: str | None = None) -> BackupContainer:
    """The backup at ``url`` for reading. A key file is read first, so a bad one is named before
    anything is contacted (``invalid_encryption_key_file``, 2383)."""
    if key_file is not None:
        read_key_file(key_file)
    container = open_container(url, credential_files=credential_files)
    return unlock(container, encryption_of(container), key_file)


def check_destination(container: BackupContainer, settings: EncryptionSettings | None) -> None:
    """A new backup into a container that already holds one must not mix plain and encrypted files, block
    sizes, or keys (FDB's ``modify`` refuses a different key for the same URL likewise)."""
    try:
        if not container.exists(naming.property_path(naming.ENCRYPTION_METADATA)):
            return
    except errors.BackupDoesNotExist:  # no bucket yet
        return
    existing, wanted = encryption_of(container), metadata_for(settings)
    if (existing.enabled, existing.block_size) != (wanted.enabled, wanted.block_size):

        def says(m: EncryptionMetadata) -> str:
            return f"encryption with {m.block_size}-byte blocks" if m.enabled else "no encryption"

        raise errors.BackupError(
            f"{container.url} already holds a backup with {says(existing)}; this backup asks for {says(wanted)}. "
            "Use another URL"
        )
    if settings is not None:
        _probe_key(EncryptedContainer(container, settings.cipher()))


def _probe_key(container: EncryptedContainer) -> None:
    """Decrypt the first block of one encrypted file: a different key fails it."""
    for info in container.list(""):
        if naming.sealing(info.path) != naming.Sealing.PLAIN and info.size:
            try:
                container.read(info.path, 0, 1)
            except errors.RestoreCorruptedData:
                raise errors.BackupError(
                    f"{container.url} already holds files encrypted with another key ({info.path}). {KEY_HINT}. "
                    "Use another URL or the backup's key"
                ) from None
            return
