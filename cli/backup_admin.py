"""``fdbbackup modify | pause | resume | query | cleanup``: steering running backups, with FDB's texts.

- ``modify`` changes a running backup: ``-d`` a new container (later log files and snapshot periods
  go there; the running snapshot finishes where it started), ``-s`` the interval of later periods,
  ``--active-snapshot-interval`` the current period's, ``--verify-uid`` guards against a changed tag.
  Like FDB it prints nothing on success, and every refusal is ``backup_error``.
- ``pause``/``resume`` stop and restart every backup's log chain and snapshot tasks (FDB pauses its
  whole task bucket); the cluster keeps the captured mutations meanwhile, so nothing is lost.
- ``query`` prints which files a restore to a version reads (:mod:`cli.backup_query`).
- ``cleanup`` lists the mutation-log retention backups left in the cluster and, with
  ``--delete-data``, removes the oldest once it is ``--min-cleanup-seconds`` behind.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import click

from cli import common, exit_codes
from cli.backup_query import NEWEST, query_document, range_text, resolve_versions
from fdbcore import errors
from fdbcore.backup_encryption import open_backup
from fdbcore.catalog import Catalog
from fdbcore.cluster import connect
from fdbcore.container import open_container, redact_url
from fdbcore.keys import USER_KEYS
from fdbcore.modes import RestoreMode
from workers.backup import control
from workers.backup.job import BackupJob
from workers.state import JobStore


def _store() -> JobStore[BackupJob]:
    return common.state_store("backup", BackupJob)


@click.command(epilog=exit_codes.HELP_EPILOG)
@common.cluster_option
@click.option("-t", "--tagname", "tag", default="default", show_default=True)
@click.option("-d", "--destcontainer", "url", default=None, help="A new backup URL for later files.")
@click.option("-s", "--snapshot-interval", "interval", type=int, default=None, help="Seconds of later periods.")
@click.option("--active-snapshot-interval", "active", type=int, default=None, help="Seconds of the current period.")
@click.option("--verify-uid", "verify_uid", default=None, help="Refuse unless the tag's backup has this UID.")
@common.blob_credentials_option
@common.encryption_key_option
def modify(
    cluster_file: str | None,
    tag: str,
    url: str | None,
    interval: int | None,
    active: int | None,
    verify_uid: str | None,
    blob_credentials: Sequence[str],
    encryption_key_file: str | None,
) -> int:
    """Change a running backup's container or snapshot intervals."""
    if interval is not None and interval <= 0:
        raise errors.InvalidOptionValue(f"snapshot interval must be positive, got {interval}")
    if active is not None and active < 0:
        raise errors.InvalidOptionValue(f"active snapshot interval must not be negative, got {active}")
    container = None
    if url is not None:
        try:
            container = open_container(url, credential_files=blob_credentials)
        except errors.FDBError as exc:
            raise errors.BackupError(f"Could not create backup container at '{redact_url(url)}': {exc}") from None
    change = control.Modification(
        url=url,
        credential_files=blob_credentials or None,
        snapshot_interval=interval,
        active_snapshot_interval=active,
        verify_uid=verify_uid,
        key_file=encryption_key_file,
    )
    control.modify(_store(), container, tag, change)
    return exit_codes.OK


def _pause_command(pause: bool) -> click.Command:
    """``pause`` or ``resume``: FDB's changeBackupResumed."""
    word = "paused" if pause else "resumed"

    @click.command(name="pause" if pause else "resume", epilog=exit_codes.HELP_EPILOG)
    @common.cluster_option
    def command(cluster_file: str | None) -> int:
        control.set_paused(_store().client, pause)
        click.echo(f"All backup agents have been {word}.")
        return exit_codes.OK

    command.help = "Pause every backup's log capture and snapshots." if pause else "Resume paused backups."
    return command


pause, resume = _pause_command(True), _pause_command(False)


@click.command(epilog=exit_codes.HELP_EPILOG)
@click.option("-d", "--destcontainer", "url", required=True)
@click.option(
    "-qrv", "--query-restore-version", "version", type=int, default=NEWEST, help="-1: the newest, -3: the oldest."
)
@click.option("--query-restore-snapshot-version", "snapshot_version", type=int, default=None)
@click.option("--query-restore-timestamp", "timestamp", default=None, help="YYYY/MM/DD.HH:MI:SS+hhmm (with -C).")
@click.option("-k", "--keys", "keys", multiple=True, help='Key ranges "<BEGIN> <END>" to restore (repeatable).')
@click.option("--mode", "mode_text", default="rangefile", show_default=True, help="rangefile or bulkload.")
@common.cluster_option
@common.blob_credentials_option
@common.encryption_key_option
def query(
    url: str,
    version: int,
    snapshot_version: int | None,
    timestamp: str | None,
    keys: Sequence[str],
    mode_text: str,
    cluster_file: str | None,
    blob_credentials: Sequence[str],
    encryption_key_file: str | None,
) -> int:
    """Which files a restore to a version reads, and their sizes (JSON)."""
    from cli.fdbrestore import MODE_HINTS, parse_timestamp

    ranges = common.parse_keys_options(keys)
    mode = common.parse_mode(RestoreMode, mode_text, "restore", MODE_HINTS)
    doc: dict[str, object] = {
        "key_ranges_filter": "[" + ", ".join(range_text(r) for r in ranges) + "]",
        "destination_container": redact_url(url),
    }
    try:
        if timestamp is not None:
            if not cluster_file:
                raise errors.RestoreError(
                    f"a cluster file must be given in order to resolve restore target timestamp '{timestamp}'"
                )
            version = connect(common.resolve_cluster_file(cluster_file)).version_at_time(parse_timestamp(timestamp))
            doc["restore_timestamp"] = timestamp
            doc["restore_timestamp_resolved_version"] = version
        catalog = Catalog(open_backup(url, credential_files=blob_credentials, key_file=encryption_key_file))
        version, snapshot_version = resolve_versions(catalog, mode, version, snapshot_version)
        if version < 0:
            raise errors.RestoreInvalidVersion(f"the specified restorable version {version} is not valid")
        rs = catalog.restore_set(version, ranges or [USER_KEYS], mode, snapshot_version=snapshot_version)
        if snapshot_version is not None:
            doc["snapshot_version"] = snapshot_version
        doc.update(query_document(catalog, rs, mode, ranges or [USER_KEYS]))
    except errors.FDBError as exc:  # FDB prints the document with its "error" (and exits 0; we do not)
        doc["error"] = exc.message
        doc["error_name"], doc["error_code"] = exc.name, exc.code
        click.echo(json.dumps(doc, indent=2))
        return exit_codes.exit_code_for(exc)
    click.echo(json.dumps(doc, indent=2))
    return exit_codes.OK


@click.command(epilog=exit_codes.HELP_EPILOG)
@common.cluster_option
@click.option("--delete-data", "delete", is_flag=True, help="Remove the oldest retention if far enough behind.")
@click.option(
    "--min-cleanup-seconds",
    "min_seconds",
    type=float,
    default=control.MIN_CLEANUP_SECONDS,
    show_default=True,
    help="How far behind (seconds of versions) a retention must be to be removed.",
)
def cleanup(cluster_file: str | None, delete: bool, min_seconds: float) -> int:
    """Find (and remove) mutation-log retention left in the cluster by dead or abandoned backups."""
    store = _store()
    driver = connect(common.resolve_cluster_file(cluster_file))
    read_version = driver.get_read_version()
    logs = control.retained_logs(store, driver)
    for log in logs:
        hours = log.hours_behind(read_version)
        if log.job is None:
            click.echo(f"WARNING: Found an unknown tag that is {hours:.4f} hours behind.")
        else:
            click.echo(f"Found a Backup that is {hours:.4f} hours behind.")
    if not logs:
        return exit_codes.OK
    oldest = logs[0]
    hours = oldest.hours_behind(read_version)
    far_enough = read_version - oldest.saved_version > min_seconds * 1_000_000
    if delete and far_enough:
        control.remove_retained(store, driver, oldest, hours)
        click.echo(f"\nSuccessfully removed the tag that was {hours:.4f} hours behind.\n")
    elif delete:
        click.echo(
            "\nWARNING: Did not delete data because the tag is not at least "
            f"{min_seconds / 3600.0:.4f} hours behind. Change `--min-cleanup-seconds' to adjust this threshold.\n"
        )
    elif far_enough:
        click.echo(f"\nPassing `--delete-data' would delete the tag that is {hours:.4f} hours behind.\n")
    else:
        click.echo(
            f"\nPassing `--delete-data' would not delete the tag that is {hours:.4f} hours behind. "
            "Change `--min-cleanup-seconds' to adjust the cleanup threshold.\n"
        )
    return exit_codes.OK
