"""What BulkDump and BulkLoad share: checked request fields, scratch folders, the manifest root, fault hooks.

Scratch folders live under ``<data dir>/bulk/``, on the database's own file system, so a BulkLoad's
downloaded SSTs can be ingested by renaming rather than copying. Each call gets its own folder, removed
when the call ends; whatever a killed server left there is removed when it starts again.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from embedded_cluster.cancel import Cancellation
from embedded_cluster.faults import FaultRegistry
from fdbcore import errors, naming
from fdbcore.container import check_path, redact_url
from fdbcore.container.url import BLOBSTORE_SCHEME
from fdbcore.formats.bulkdump_manifest import TRANSPORT_BLOBSTORE, TRANSPORT_CP
from fdbcore.keys import USER_END, KeyRange, printable

log = logging.getLogger(__name__)

WORK_DIRNAME = "bulk"
#: The file inside a call's scratch folder whose existence tells its worker processes to stop.
CANCEL_FLAG = "cancel"
#: The manifest separator; FDB's parser splits on it, so no manifest value may contain it.
_MANIFEST_SEP = ", "


@dataclass(frozen=True, slots=True)
class Scratch:
    """A call's scratch folder and its cancellation flag (see :meth:`Cancellation.wait_for`)."""

    path: Path

    @property
    def flag(self) -> Path:
        return self.path / CANCEL_FLAG


@contextmanager
def scratch(data_dir: Path, prefix: str) -> Iterator[Scratch]:
    root = data_dir / WORK_DIRNAME
    root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        yield Scratch(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def clear_scratch(data_dir: Path) -> None:
    """Remove what calls cut short by a crash left behind (call before serving)."""
    shutil.rmtree(data_dir / WORK_DIRNAME, ignore_errors=True)


def check_uid(name: str, value: str) -> str:
    if not naming.is_uid(value):
        raise errors.InvalidOptionValue(f"{name} must be 32 lowercase hex characters, not {value!r}")
    return value


def user_range(begin: bytes, end: bytes, what: str) -> KeyRange:
    """A non-empty range of user keys (``begin < end <= \\xff``), as FDB's bulk commands require."""
    r = KeyRange(begin, end)
    if r.empty:
        raise errors.InvalidOptionValue(f"{what} of an empty range {r}")
    if r.end > USER_END:
        raise errors.KeyOutsideLegalRange(f"{what}: range end {printable(r.end)} is past the user keys (\\xff)")
    return r


def dataset_root(root: str) -> str:
    """The dataset root inside the container: a plain relative path (``bulkdump_data``)."""
    return check_path(root.strip("/"))


def transport_method(url: str) -> int:
    return TRANSPORT_BLOBSTORE if url.startswith(BLOBSTORE_SCHEME) else TRANSPORT_CP


def manifest_root(url: str, root: str) -> str:
    """``[RootPath]`` of a batch manifest: the container URL, secrets redacted, with the dataset root
    added to its path (before any query). Loaders replace it with their own root, as FDB's do."""
    base, question, query = redact_url(url).partition("?")
    text = f"{base.rstrip('/')}/{root}{question}{query}"
    if _MANIFEST_SEP in text:
        raise errors.InvalidOptionValue(
            f"the dataset root {text!r} contains {_MANIFEST_SEP!r}, which BulkDump manifests cannot hold"
        )
    return text


_FAILURES = {
    "bulk_dump": errors.BulkdumpTaskFailed,
    "bulk_load": errors.BulkloadTaskFailed,
    "lock_range": errors.RangeLockFailed,
}


def act_on_fault(faults: FaultRegistry, operation: str, range: KeyRange, cancellation: Cancellation, what: str) -> None:
    """Apply an injected fault armed for ``operation`` on a range intersecting ``range``, if any:
    ``fail`` raises the operation's task failure, ``stall`` sleeps (until cancelled if 0 seconds)."""
    fault = faults.take(operation, range)
    if fault is None:
        return
    log.warning("%s: injected fault %s", what, fault.public())
    if fault.action == "fail":
        raise _FAILURES[operation](f"{what}: injected failure")
    cancellation.sleep(fault.stall_seconds, what)
