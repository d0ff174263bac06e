"""One restore's record in Redis (FDB's RestoreConfig), read as a typed, immutable view."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from fdbcore import errors
from fdbcore.keys import USER_END, KeyRange, strinc
from workers.backup.job import ranges_from_json


class RestoreState(StrEnum):
    """FDB's ``ERestoreState`` names (a failed restore ends ``aborted`` with its error recorded)."""

    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    COMPLETED = "completed"
    ABORTED = "aborted"


ACTIVE_STATES = (RestoreState.QUEUED, RestoreState.STARTING, RestoreState.RUNNING)


class RestoreMode(StrEnum):
    RANGEFILE = "rangefile"
    BULKLOAD = "bulkload"


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


@dataclass(frozen=True)
class VersionPiece:
    """Keys in ``range`` (source key space) hold data as of ``version`` after the snapshot phase."""

    range: KeyRange
    version: int


def pieces_to_json(pieces: list[VersionPiece]) -> str:
    return json.dumps([[p.range.begin.hex(), p.range.end.hex(), p.version] for p in pieces])


def pieces_from_json(raw: str) -> list[VersionPiece]:
    return [VersionPiece(KeyRange(bytes.fromhex(b), bytes.fromhex(e)), v) for b, e, v in json.loads(raw)]


def _int(d: dict[str, str], key: str) -> int | None:
    v = d.get(key, "")
    return int(v) if v != "" else None


@dataclass(frozen=True)
class RestoreJob:
    uid: str
    tag: str
    url: str
    url_display: str
    cluster_file: str  # destination
    credential_files: list[str]
    mode: RestoreMode
    target_version: int
    ranges: list[KeyRange]  # source key space
    rewrite: Rewrite
    state: RestoreState
    created_at: float
    snapshot_phase: PhaseState
    log_phase: PhaseState
    blocks_total: int
    blocks_done: int
    files: int
    bytes_written: int
    tasks_total: int
    tasks_done: int
    raw: dict[str, str]

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def lock_owner(self) -> str:
        """Owner of the destination range lock held for the whole restore."""
        return f"restore:{self.uid}"

    @property
    def dest_ranges(self) -> list[KeyRange]:
        return [self.rewrite.range(r) for r in self.ranges]

    @staticmethod
    def from_fields(d: dict[str, str]) -> RestoreJob:
        return RestoreJob(
            uid=d["uid"],
            tag=d["tag"],
            url=d["url"],
            url_display=d["url_display"],
            cluster_file=d["cluster_file"],
            credential_files=json.loads(d.get("credential_files", "[]")),
            mode=RestoreMode(d["mode"]),
            target_version=int(d["target_version"]),
            ranges=ranges_from_json(d["ranges"]),
            rewrite=Rewrite(bytes.fromhex(d.get("remove_prefix", "")), bytes.fromhex(d.get("add_prefix", ""))),
            state=RestoreState(d["state"]),
            created_at=float(d.get("created_at", "0")),
            snapshot_phase=PhaseState(d.get("snapshot_phase", PhaseState.NOT_STARTED)),
            log_phase=PhaseState(d.get("log_phase", PhaseState.NOT_STARTED)),
            blocks_total=int(d.get("blocks_total", "0")),
            blocks_done=int(d.get("blocks_done", "0")),
            files=int(d.get("files", "0")),
            bytes_written=int(d.get("bytes_written", "0")),
            tasks_total=int(d.get("tasks_total", "0")),
            tasks_done=int(d.get("tasks_done", "0")),
            raw=d,
        )
