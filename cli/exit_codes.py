"""The one place where errors become process exit codes.

FDB's tools exit 1 for every failure; we keep 1 for "the operation failed" and give the classes of
failure an operator scripts against their own codes (documented in every command's ``--help``).
"""

from __future__ import annotations

from fdbcore.errors import Category, FDBError

OK = 0
FAILED = 1  # FDB_EXIT_ERROR: the operation failed
USAGE = 2  # invalid option, URL, key range or version
NOT_FOUND = 4  # no such backup, tag, restore or file
CONFLICT = 5  # a backup already runs on the tag, destination not empty, range locked
INTEGRITY = 6  # backup data missing, corrupt or incomplete
UNAVAILABLE = 7  # cluster, Redis or S3 endpoint unreachable
CONFIGURATION = 8  # credentials missing, BulkLoad knobs off
INTERRUPTED = 130

_BY_CATEGORY = {
    Category.USAGE: USAGE,
    Category.NOT_FOUND: NOT_FOUND,
    Category.CONFLICT: CONFLICT,
    Category.INTEGRITY: INTEGRITY,
    Category.UNAVAILABLE: UNAVAILABLE,
    Category.CONFIGURATION: CONFIGURATION,
    Category.TRANSIENT: FAILED,
    Category.INTERNAL: FAILED,
}

HELP_EPILOG = (
    "Exit status: 0 success; 1 the operation failed; 2 invalid usage; 4 not found; "
    "5 conflicting state; 6 backup data missing or corrupt; 7 a service is unreachable; "
    "8 configuration (credentials, knobs); 130 interrupted."
)


def exit_code_for(err: BaseException) -> int:
    if isinstance(err, FDBError):
        return _BY_CATEGORY[err.category]
    if isinstance(err, KeyboardInterrupt):
        return INTERRUPTED
    return FAILED
