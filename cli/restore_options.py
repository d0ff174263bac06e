"""``fdbrestore start``'s options for what to restore beyond the target version (FDB's, and one of ours).

- ``--incremental`` with ``--begin-version V``: apply only the logs after ``V`` onto a destination
  restored to ``V`` before (FDB's logs-only restore; the destination is not checked empty).
- ``--inconsistent-snapshot-only``: the snapshot's files alone, no logs; each range holds the data of
  its own file's version, so the result is consistent only if they all share one.
- ``--snapshot-version V`` (ours): restore from the newest snapshot of the mode's kind that ends at or
  before ``V`` and replay the logs from there. It is how an operator chooses the older snapshot that
  ``fdbrestore`` names when the newest one is damaged or incomplete (the design's "older snapshot
  fallback"): the restore never falls back on its own, since an older snapshot means replaying more
  logs. The name follows ``fdbbackup query --query-restore-snapshot-version``, which picks a
  snapshot the same way.
- ``-f``: a range-file restore may write into non-empty destination ranges. FDB accepts ``-f`` and
  ignores it; here each range-file block clears its range before writing, so the ranges end up
  equal to the backup.
- ``--user-data`` restores the normal key space (the default); ``--system-metadata`` is refused:
  backups of the embedded cluster hold user keys only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click

from fdbcore import errors
from fdbcore.keys import USER_KEYS, KeyRange
from fdbcore.modes import RestoreMode
from workers.restore.plan import Selection


@dataclass(frozen=True)
class Chosen:
    incremental: bool
    begin_version: int | None
    snapshot_only: bool
    snapshot_version: int | None
    force: bool
    user_data: bool
    system_metadata: bool

    def ranges(self, given: Sequence[KeyRange]) -> list[KeyRange]:
        """The restore ranges: ``-k``/``--keys-file``, or what ``--user-data`` names, or everything."""
        if self.user_data and self.system_metadata:
            raise errors.InvalidOptionValue("Please only specify one of --user-data or --system-metadata, not both")
        if (self.user_data or self.system_metadata) and given:
            raise errors.InvalidOptionValue(
                "Cannot specify additional ranges when using --user-data or --system-metadata options"
            )
        if self.system_metadata:
            raise errors.RestoreMissingData(
                "--system-metadata: the backup holds no system metadata (backups of the embedded cluster "
                "cover user keys only); restore them with --user-data"
            )
        return list(given) or [USER_KEYS]

    def selection(self, mode: RestoreMode) -> Selection:
        if self.begin_version is not None and not self.incremental:
            raise errors.InvalidOptionValue("--begin-version applies only to an --incremental restore")
        if self.incremental:
            clash = [
                name
                for name, on in (
                    ("--inconsistent-snapshot-only", self.snapshot_only),
                    ("--snapshot-version", self.snapshot_version is not None),
                    ("--mode bulkload", mode == RestoreMode.BULKLOAD),
                )
                if on
            ]
            if clash:
                raise errors.InvalidOptionValue(f"--incremental restores logs only; it cannot be used with {clash[0]}")
        if self.snapshot_only and self.snapshot_version is not None:
            raise errors.InvalidOptionValue("--inconsistent-snapshot-only cannot be used with --snapshot-version")
        return Selection(self.snapshot_version, self.incremental, self.begin_version, self.snapshot_only)


def selection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options above to a command; it receives them as one ``selection: Chosen`` argument."""

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        chosen = Chosen(**{name: kwargs.pop(name) for name in Chosen.__dataclass_fields__})
        return func(selection=chosen, **kwargs)

    options = [
        click.option("--incremental", is_flag=True, help="Apply only the logs after --begin-version."),
        click.option("--begin-version", "begin_version", type=int, default=None, help="With --incremental."),
        click.option(
            "--inconsistent-snapshot-only", "snapshot_only", is_flag=True, help="Restore the snapshot's files, no logs."
        ),
        click.option(
            "--snapshot-version",
            "snapshot_version",
            type=int,
            default=None,
            help="Restore from the newest snapshot ending at or before this version (an older one).",
        ),
        click.option("-f", "--force", is_flag=True, help="Write into non-empty destination ranges (range files)."),
        click.option("--user-data", "user_data", is_flag=True, help="Restore the normal key space (the default)."),
        click.option("--system-metadata", "system_metadata", is_flag=True, help="Refused: no system metadata."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper
