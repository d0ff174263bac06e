"""The project's exception tree, carrying FoundationDB's error names and codes.

Every error a user can see is an :class:`FDBError` whose ``name`` and ``code`` are FDB's own
(``flow/include/flow/error_definitions.h``), so operators can search for them exactly as they
would for ``fdbbackup``. Third-party exceptions (botocore, rocksdict, grpc, OSError) are translated
into this tree at the module that calls the library, with ``raise ... from exc``.

Exit codes are *not* decided here: the CLIs map errors to exit codes in one place
(``cli/exit_codes.py``) using :attr:`FDBError.category`.
"""

from __future__ import annotations

from enum import Enum
from typing import ClassVar


class Category(Enum):
    """Coarse classes of failure, used for exit codes and for retry decisions."""

    USAGE = "usage"  # the request itself is wrong: bad URL, option, range, version
    NOT_FOUND = "not_found"  # the thing asked for does not exist
    CONFLICT = "conflict"  # state forbids it: duplicate tag, non-empty destination, locked range
    INTEGRITY = "integrity"  # data is missing, corrupt or incomplete
    TRANSIENT = "transient"  # retrying may succeed: throttling, timeouts, connection loss
    UNAVAILABLE = "unavailable"  # a service (cluster, S3, Redis) cannot be reached
    CONFIGURATION = "configuration"  # the environment is not set up for the operation
    INTERNAL = "internal"  # a bug or an unexpected failure


class FDBError(Exception):
    """Base class: an error with FDB's name and numeric code and a human message."""

    name: ClassVar[str] = "unknown_error"
    code: ClassVar[int] = 4000
    category: ClassVar[Category] = Category.INTERNAL
    #: Retrying the same operation later may succeed.
    retryable: ClassVar[bool] = False

    def __init__(self, message: str = "") -> None:
        self.message = message or self.name.replace("_", " ")
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.message} ({self.name}, {self.code})"

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "code": self.code, "message": self.message}


_REGISTRY: dict[int, type[FDBError]] = {}


def _define(name: str, code: int, category: Category, retryable: bool = False) -> type[FDBError]:
    cls = type(
        "".join(part.capitalize() for part in name.split("_")),
        (FDBError,),
        {"name": name, "code": code, "category": category, "retryable": retryable, "__module__": __name__},
    )
    _REGISTRY[code] = cls
    return cls


def error_for_code(code: int, message: str = "") -> FDBError:
    """Rebuild an error from its code, e.g. after it crossed an RPC or a Celery result."""
    cls = _REGISTRY.get(code)
    if cls is None:
        err = UnknownError(message or f"unknown error code {code}")
        return err
    return cls(message)


U, NF, C, INT, T, UN, CF, IN = (
    Category.USAGE,
    Category.NOT_FOUND,
    Category.CONFLICT,
    Category.INTEGRITY,
    Category.TRANSIENT,
    Category.UNAVAILABLE,
    Category.CONFIGURATION,
    Category.INTERNAL,
)

# --- general / transaction errors -----------------------------------------------------------------
EndOfStream = _define("end_of_stream", 1, IN)
OperationFailed = _define("operation_failed", 1000, IN)
TimedOut = _define("timed_out", 1004, T, retryable=True)
TransactionTooOld = _define("transaction_too_old", 1007, T, retryable=True)
FutureVersion = _define("future_version", 1009, T, retryable=True)
NotCommitted = _define("not_committed", 1020, T, retryable=True)
CommitUnknownResult = _define("commit_unknown_result", 1021, T, retryable=True)
TransactionCancelled = _define("transaction_cancelled", 1025, IN)
ConnectionFailed = _define("connection_failed", 1026, UN, retryable=True)
DatabaseLocked = _define("database_locked", 1038, C)
LookupFailed = _define("lookup_failed", 1041, UN, retryable=True)
ProcessBehind = _define("process_behind", 1037, T, retryable=True)
#: The process serving a request died before it answered.
BrokenPromise = _define("broken_promise", 1100, T, retryable=True)
Retry = _define("retry", 1105, T, retryable=True)
IoError = _define("io_error", 1510, IN)
FileNotFound = _define("file_not_found", 1511, NF)
FileNotReadable = _define("file_not_readable", 1513, IN)
NoClusterFileFound = _define("no_cluster_file_found", 1515, CF)
FileTooLarge = _define("file_too_large", 1516, INT)
FileCorrupt = _define("file_corrupt", 1522, INT)
HttpRequestFailed = _define("http_request_failed", 1523, T, retryable=True)
ClientInvalidOperation = _define("client_invalid_operation", 2000, U)
KeyOutsideLegalRange = _define("key_outside_legal_range", 2004, U)
InvertedRange = _define("inverted_range", 2005, U)
InvalidOptionValue = _define("invalid_option_value", 2006, U)
InvalidOption = _define("invalid_option", 2007, U)
InvalidMutationType = _define("invalid_mutation_type", 2018, U)
TransactionTooLarge = _define("transaction_too_large", 2101, U)
KeyTooLarge = _define("key_too_large", 2102, U)
ValueTooLarge = _define("value_too_large", 2103, U)
ConnectionStringInvalid = _define("connection_string_invalid", 2104, U)
IncompatibleProtocolVersion = _define("incompatible_protocol_version", 2100, INT)
KeyNotFound = _define("key_not_found", 2400, NF)
UnknownError = _define("unknown_error", 4000, IN)
InternalError = _define("internal_error", 4100, IN)

# --- bulk load / bulk dump / range lock -----------------------------------------------------------
BulkloadTaskFailed = _define("bulkload_task_failed", 1238, IN)
BulkloadTaskOutdated = _define("bulkload_task_outdated", 1239, C)
RangeLockFailed = _define("range_lock_failed", 1241, C)
TransactionRejectedRangeLocked = _define("transaction_rejected_range_locked", 1242, C, retryable=True)
BulkdumpTaskFailed = _define("bulkdump_task_failed", 1243, IN)
BulkdumpTaskOutdated = _define("bulkdump_task_outdated", 1244, C)
BulkloadFilesetInvalidFilepath = _define("bulkload_fileset_invalid_filepath", 1245, INT)
BulkloadManifestDecodeError = _define("bulkload_manifest_decode_error", 1246, INT)
RangeLockReject = _define("range_lock_reject", 1247, C)
RangeUnlockReject = _define("range_unlock_reject", 1248, C)
BulkloadDatasetNotCoverRequiredRange = _define("bulkload_dataset_not_cover_required_range", 1249, INT)
BulkloadInvalidConfiguration = _define("bulkload_invalid_configuration", 1250, CF)

# --- backup / restore -----------------------------------------------------------------------------
BackupError = _define("backup_error", 2300, IN)
RestoreError = _define("restore_error", 2301, IN)
BackupDuplicate = _define("backup_duplicate", 2311, C)
BackupUnneeded = _define("backup_unneeded", 2312, C)
BackupBadBlockSize = _define("backup_bad_block_size", 2313, U)
BackupInvalidUrl = _define("backup_invalid_url", 2314, U)
BackupInvalidInfo = _define("backup_invalid_info", 2315, INT)
BackupCannotExpire = _define("backup_cannot_expire", 2316, C)
BackupAuthMissing = _define("backup_auth_missing", 2317, CF)
BackupAuthUnreadable = _define("backup_auth_unreadable", 2318, CF)
BackupDoesNotExist = _define("backup_does_not_exist", 2319, NF)
BackupNotFilterableWithKeyRanges = _define("backup_not_filterable_with_key_ranges", 2320, U)
BackupNotOverlappedWithKeysFilter = _define("backup_not_overlapped_with_keys_filter", 2321, U)
BucketNotInUrl = _define("bucket_not_in_url", 2322, U)
RestoreInvalidVersion = _define("restore_invalid_version", 2361, U)
RestoreCorruptedData = _define("restore_corrupted_data", 2362, INT)
RestoreMissingData = _define("restore_missing_data", 2363, INT)
RestoreDuplicateTag = _define("restore_duplicate_tag", 2364, C)
RestoreUnknownTag = _define("restore_unknown_tag", 2365, NF)
RestoreUnknownFileType = _define("restore_unknown_file_type", 2366, INT)
RestoreUnsupportedFileVersion = _define("restore_unsupported_file_version", 2367, INT)
RestoreBadRead = _define("restore_bad_read", 2368, INT)
RestoreCorruptedDataPadding = _define("restore_corrupted_data_padding", 2369, INT)
RestoreDestinationNotEmpty = _define("restore_destination_not_empty", 2370, C)
RestoreDuplicateUid = _define("restore_duplicate_uid", 2371, C)
TaskInvalidVersion = _define("task_invalid_version", 2381, IN)
TaskInterrupted = _define("task_interrupted", 2382, T, retryable=True)
InvalidEncryptionKeyFile = _define("invalid_encryption_key_file", 2383, U)
RestoreBulkloadDatasetIncomplete = _define("restore_bulkload_dataset_incomplete", 2390, INT)
RestoreBulkloadFailed = _define("restore_bulkload_failed", 2391, IN)
BackupBulkdumpTimeout = _define("backup_bulkdump_timeout", 2392, T)
BackupBulkdumpFailed = _define("backup_bulkdump_failed", 2393, IN)

del U, NF, C, INT, T, UN, CF, IN


def ensure_fdb_error(exc: BaseException) -> FDBError:
    """``exc`` itself if it is one of ours; otherwise an ``internal_error`` naming what happened."""
    if isinstance(exc, FDBError):
        return exc
    return InternalError(f"{type(exc).__name__}: {exc}")


def all_errors() -> dict[int, type[FDBError]]:
    """Every error class this project defines, by code (for docs and tests)."""
    return dict(_REGISTRY)
