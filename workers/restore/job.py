"""One restore's record in Redis (FDB's RestoreConfig), read as a typed, immutable view."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from fdbcore import errors
from fdbcore.keys import USER_END, USER_KEYS, KeyRange, strinc
from fdbcore.modes import RestoreMode
from workers.encryption import EncryptedJob
from workers.record import keyed


class RestoreState(StrEnum):
    """FDB's ``ERestoreState`` names (a failed restore ends ``aborted`` with its error recorded)."""

    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    COMPLETED = "completed"
    ABORTED = "aborted"


ACTIVE_STATES = (RestoreState.QUEUED, RestoreState.STARTING, RestoreState.RUNNING)


class PhaseState(StrEnum):
    """The phase words ``fdbrestore status`` prints."""

    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"


@dataclass(frozen=True)
class Rewrite:
    """``--remove-prefix``/``--add-prefix``, applied to range data and mutations alike."""

    remove: bytes = b""
    add: bytes = b""

    def key(self, k: bytes) -> bytes:
        return self.add + k[len(self.remove) :]

    def range(self, r: KeyRange) -> KeyRange:
        if r.end.startswith(self.remove):
            end = self.key(r.end)
        else:  # r.end == strinc(remove): the range runs to the end of the prefix
            end = strinc(self.add) if self.add else USER_END
        return KeyRange(self.key(r.begin), end)

    def check(self, ranges: list[KeyRange]) -> list[KeyRange]:
        """Validate the prefixes against the restore ranges; return the destination ranges."""
        if self.remove:
            for r in ranges:
                end_inside = r.end.startswith(self.remove) or r.end == strinc(self.remove)
                if not (r.begin.startswith(self.remove) and end_inside):
                    raise errors.InvalidOptionValue(
                        f"--remove-prefix {self.remove!r}: restore range {r} holds keys without that prefix; "
                        "restrict the restore with -k to keys that start with it"
                    )
        out = [self.range(r) for r in ranges]
        for before, after in zip(ranges, out, strict=True):
            if after.end > USER_END:
                raise errors.KeyOutsideLegalRange(
                    f"restoring {before} with --add-prefix {self.add!r} would write into the system key space {after}"
                )
        return out


@dataclass(frozen=True, kw_only=True)
class RestoreJob(EncryptedJob):
    """``fdbbr:restore:<uid>``; the files it reads are in its :class:`~workers.restore.plan.RestorePlan`."""

    uid: str
    tag: str
    url: str
    url_display: str
    cluster_file: str  # destination
    mode: RestoreMode
    target_version: int
    ranges: list[KeyRange]  # source key space
    state: RestoreState
    credential_files: list[str] = field(default_factory=list)
    remove_prefix: bytes = b""
    add_prefix: bytes = b""
    #: The destination ranges may hold data (``-f``, or ``--incremental``): no emptiness check.
    overwrite: bool = False
    created_at: float = 0.0
    snapshot_dispatched: bool = False
    snapshot_phase: PhaseState = PhaseState.NOT_STARTED
    log_phase: PhaseState = PhaseState.NOT_STARTED
    # --- progress (totals from the plan)
    files: int = 0
    blocks_total: int = 0
    blocks_done: int = 0
    tasks_total: int = 0
    tasks_done: int = 0
    bytes_written: int = 0
    replay_bytes: int = 0
    log_file_bytes: int = 0
    streams: int = 0
    #: Failed attempts per BulkLoad group.
    bulkload_attempts: dict[int, int] = keyed("bulkload_attempts:")
    # --- the destination ranges' old contents (:mod:`workers.restore.replacement`)
    aside_keys: int = 0
    aside_bytes: int = 0
    #: The old contents are set aside and the destination ranges cleared: an abort must put them back.
    ranges_cleared: bool = False
    #: After an abort: putting the old contents back and releasing the ranges.
    rollback: PhaseState = PhaseState.NOT_STARTED
    # --- times
    started_at: float | None = None
    verified_at: float | None = None
    prepared_at: float | None = None  # the old contents set aside, the ranges cleared
    snapshot_done_at: float | None = None
    completed_at: float | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def rewrite(self) -> Rewrite:
        return Rewrite(self.remove_prefix, self.add_prefix)

    @property
    def lock_owner(self) -> str:
        """Owner of the destination range lock held for the whole restore."""
        return f"restore:{self.uid}"

    @property
    def abort_owner(self) -> str:
        """Owner the lock is handed to when the restore aborts: the restore's own writers are shut out."""
        return f"restore:{self.uid}:abort"

    @property
    def dest_ranges(self) -> list[KeyRange]:
        return [self.rewrite.range(r) for r in self.ranges]

    @property
    def whole_database(self) -> bool:
        """No ``-k``: the restore is of every user key, like FDB's (which needs an empty destination)."""
        return self.ranges == [USER_KEYS]

    @property
    def settled(self) -> bool:
        """Over, and (after an abort) the ranges put back and released."""
        return not self.active and (self.state != RestoreState.ABORTED or self.rollback == PhaseState.COMPLETE)
