"""``fdbbackup``: submit and inspect backups (the producer; the fleet does the work).

Subcommands, options and messages follow FDB 8.0's ``fdbbackup`` (``fdb-formats.md`` §5.1).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence

import click

from cli import backup_admin, backup_describe, common, exit_codes
from cli.backup_status import state_text, status_json, status_text
from cli.progress import LiveProgress
from config import get_settings
from fdbcore import errors
from fdbcore.backup_encryption import check_destination, encryption_of, key_required, open_backup, unlock
from fdbcore.catalog import Catalog
from fdbcore.catalog import expire as expire_data
from fdbcore.cluster import connect
from fdbcore.container import BackupContainer, list_backups, open_container, redact_url, start_backup_url
from fdbcore.encryption import DEFAULT_BLOCK_SIZE, EncryptionSettings
from fdbcore.keys import USER_KEYS
from fdbcore.modes import SnapshotMode
from workers.backup import control
from workers.backup.job import DEFAULT_SNAPSHOT_INTERVAL, BackupJob, BackupState, BackupView, view
from workers.state import JobStore

MODES = ", ".join(m.value for m in SnapshotMode)


def _store() -> JobStore[BackupJob]:
    return common.state_store("backup", BackupJob)


def _agents_alive() -> bool:
    from tasks.app import app

    return bool(app.control.ping(timeout=1.0))


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=exit_codes.HELP_EPILOG)
@click.version_option(package_name="fdb-backup-v3", prog_name="fdbbackup")
def cli() -> None:
    """FoundationDB backup: start | status | abort | cleanup | wait | discontinue | pause | resume | expire |
    delete | describe | list | query | dump | modify | tags."""


@cli.command(epilog=exit_codes.HELP_EPILOG)
@common.cluster_option
@click.option("-d", "--destcontainer", "url", required=True, help="The backup URL (file:// or blobstore://).")
@click.option("-t", "--tagname", "tag", default="default", show_default=True)
@click.option("-w", "--waitfordone", "wait", is_flag=True, help="Wait for the backup to complete.")
@click.option("-z", "--no-stop-when-done", "continuous", is_flag=True, help="Keep backing up after restorable.")
@click.option("-s", "--snapshot-interval", type=int, default=DEFAULT_SNAPSHOT_INTERVAL, show_default=True)
@click.option(
    "--initial-snapshot-interval",
    "initial_interval",
    type=int,
    default=0,
    show_default=True,
    help="Seconds the first snapshot's range files are spread over (0: as fast as possible).",
)
@click.option("-k", "--keys", "keys", multiple=True, help='Key ranges "<BEGIN> <END>" (repeatable).')
@common.keys_file_option
@click.option("-n", "--dryrun", is_flag=True, help="Check everything, change nothing.")
@click.option(
    "--mode",
    "--snapshot-mode",
    "mode_text",
    default="rangefile",
    help=f"Snapshot mechanism: {MODES}.",
    show_default=True,
)
@click.option("--incremental", is_flag=True, help="Back up mutation logs only, no snapshot.")
@click.option(
    "--bulkdump-timeout",
    "--timeout",
    "bulkdump_timeout",
    type=int,
    default=None,
    help="Seconds BulkDump may take before it is recorded as backup_bulkdump_timeout (default 86400).",
)
@common.encryption_key_option
@click.option(
    "--encryption-block-size",
    "encryption_block_size",
    type=int,
    default=None,
    help=f"Plaintext bytes per encrypted block (default {DEFAULT_BLOCK_SIZE}; needs --encryption-key-file).",
)
@common.blob_credentials_option
@common.log_options
def start(
    cluster_file: str | None,
    url: str,
    tag: str,
    wait: bool,
    continuous: bool,
    snapshot_interval: int,
    initial_interval: int,
    keys: Sequence[str],
    keys_file: str | None,
    dryrun: bool,
    mode_text: str,
    incremental: bool,
    bulkdump_timeout: int | None,
    encryption_key_file: str | None,
    encryption_block_size: int | None,
    blob_credentials: Sequence[str],
    log: bool,
    logdir: str | None,
    trace_format: str,
) -> int:
    """Start a backup."""
    common.configure_trace(log, logdir)
    encryption = _encryption(encryption_key_file, encryption_block_size)
    mode = common.parse_mode(SnapshotMode, mode_text, "snapshot")
    ranges = common.key_ranges(keys, keys_file) or [USER_KEYS]
    if snapshot_interval <= 0:
        raise errors.InvalidOptionValue(f"snapshot interval must be positive, got {snapshot_interval}")
    if initial_interval < 0:
        raise errors.InvalidOptionValue(f"initial snapshot interval must not be negative, got {initial_interval}")
    cluster = common.resolve_cluster_file(cluster_file)
    target = start_backup_url(url)
    container = open_container(target, credential_files=blob_credentials)
    check_destination(container, encryption)
    sub = control.Submission(
        tag=tag,
        url=target,
        cluster_file=cluster,
        mode=mode,
        ranges=ranges,
        stop_when_done=not continuous,
        snapshot_interval=snapshot_interval,
        bulkdump_deadline=bulkdump_timeout or get_settings().bulkdump_deadline,
        credential_files=blob_credentials,
        encryption=encryption,
        initial_snapshot_interval=initial_interval,
        incremental=incremental,
    )
    store = _store()
    connect(cluster).get_read_version()  # the source cluster must answer before we submit
    uid = control.submit(store, container, sub, dry_run=dryrun)
    common.note_url_secret(target)
    dry = " (DRY RUN)" if dryrun else ""
    if not dryrun:
        from tasks.backup import start as start_task

        start_task.apply_async((uid,))
    if wait:
        click.echo(f"Submitted and now waiting for the backup on tag `{tag}' to complete.{dry}")
        return 0 if dryrun else _wait(store, tag, stop_when_done=not continuous)
    if not _agents_alive():
        click.echo(f"The backup on tag `{tag}' was successfully submitted but no backup agents are responding.{dry}")
        return exit_codes.OK
    click.echo(f"The backup on tag `{tag}' was successfully submitted.{dry}")
    return exit_codes.OK


def _encryption(key_file: str | None, block_size: int | None) -> EncryptionSettings | None:
    """``--encryption-key-file``/``--encryption-block-size`` as FDB checks them; the key file is read now."""
    if key_file is None:
        if block_size is not None:
            raise errors.InvalidOptionValue("--encryption-block-size option requires --encryption-key-file to be set")
        return None
    return EncryptionSettings.of(key_file, DEFAULT_BLOCK_SIZE if block_size is None else block_size)


def _job(store: JobStore[BackupJob], tag: str) -> BackupJob:
    job = store.job_for_tag(tag)
    if job is None:
        raise errors.BackupUnneeded(f"No backup on tag `{tag}'")
    return job


def _wait(store: JobStore[BackupJob], tag: str, *, stop_when_done: bool) -> int:
    """Block until the tag's backup stops (or, continuous, becomes restorable); print FDB's line."""

    def done(job: BackupJob) -> bool:
        return not job.active or (not stop_when_done and job.state == BackupState.RUNNING_DIFFERENTIAL)

    job = common.poll(lambda: _job(store, tag), done, lambda _: None, 0.5)
    click.echo(f"The backup on tag `{tag}' {state_text(job.state)}.")
    return exit_codes.OK if job.state in (BackupState.COMPLETED, BackupState.RUNNING_DIFFERENTIAL) else 1


@cli.command()
@common.cluster_option
@click.option("-t", "--tagname", "tag", default="default")
@click.option("-e", "--errorlimit", "error_limit", type=int, default=10)
@click.option("--json", "as_json", is_flag=True)
@click.option("-w", "--wait", "follow", is_flag=True, help="Follow progress until the backup is restorable or stops.")
@common.log_options
def status(
    cluster_file: str | None,
    tag: str,
    error_limit: int,
    as_json: bool,
    follow: bool,
    log: bool,
    logdir: str | None,
    trace_format: str,
) -> int:
    """Show the status of the backup on a tag."""
    store = _store()
    if follow:
        _follow(store, tag)
    current = _view(store, tag)
    errs = store.errors(current.job.uid) if current else []
    paused = control.paused(store.client)
    if as_json:
        click.echo(json.dumps(status_json(current, tag, errs, paused), indent=2))
        return exit_codes.OK
    version_time = _version_time(current.job if current else None)
    click.echo(status_text(current, tag, errs, error_limit, version_time, paused), nl=False)
    return exit_codes.OK


def _view(store: JobStore[BackupJob], tag: str) -> BackupView | None:
    job = store.job_for_tag(tag)
    return view(store, job) if job else None


def _follow(store: JobStore[BackupJob], tag: str) -> None:
    """Live progress of the tag's backup until it is restorable or no longer active."""

    def show(current: BackupView | None) -> None:
        if current is None:
            return
        job, rf, bd = current.job, current.rangefile, current.bulkdump
        if rf is not None:
            live.update("Range-file snapshot", rf.tasks_done, rf.tasks_total, rf.phase.value)
        if bd is not None:
            live.update("BulkDump snapshot", bd.tasks_done, bd.tasks_total, f"{bd.phase}, {bd.bytes >> 20} MiB")
        live.update("Mutation logs", job.log_files, job.log_files, f"{job.log_bytes >> 20} MiB")

    def done(current: BackupView | None) -> bool:
        return current is None or not current.job.active or current.job.state == BackupState.RUNNING_DIFFERENTIAL

    with LiveProgress() as live:
        common.poll(lambda: _view(store, tag), done, show, 1.0)


def _version_time(job: BackupJob | None) -> Callable[[int], float | None]:
    if job is None:
        return lambda v: None
    try:
        driver = connect(job.cluster_file)
    except errors.FDBError:
        return lambda v: None

    def lookup(v: int) -> float | None:
        try:
            return driver.time_at_version(v)
        except errors.FDBError:
            return None

    return lookup


@cli.command()
@common.cluster_option
@click.option("-t", "--tagname", "tag", default="default")
def abort(cluster_file: str | None, tag: str) -> int:
    """Abort the backup on a tag."""
    store = _store()
    job = store.job_for_tag(tag)
    driver = connect(job.cluster_file if job else common.resolve_cluster_file(cluster_file))
    control.abort(store, driver, tag)
    click.echo(f"The backup on tag `{tag}' was successfully aborted.")
    return exit_codes.OK


@cli.command()
@common.cluster_option
@click.option("-t", "--tagname", "tag", default="default")
@click.option("-w", "--waitfordone", "wait", is_flag=True)
def discontinue(cluster_file: str | None, tag: str, wait: bool) -> int:
    """Stop a continuous backup once it is restorable."""
    store = _store()
    job = store.job_for_tag(tag)
    driver = connect(job.cluster_file if job else common.resolve_cluster_file(cluster_file))
    control.discontinue(store, driver, tag)
    if wait:
        click.echo(f"Discontinued and now waiting for the backup on tag `{tag}' to complete.")
        return _wait(store, tag, stop_when_done=True)
    click.echo(f"The backup on tag `{tag}' was successfully discontinued.")
    return exit_codes.OK


@cli.command(name="wait")
@common.cluster_option
@click.option("-t", "--tagname", "tag", default="default")
@click.option("-z", "--no-stop-when-done", "continuous", is_flag=True)
def wait_cmd(cluster_file: str | None, tag: str, continuous: bool) -> int:
    """Wait for the backup on a tag to complete."""
    return _wait(_store(), tag, stop_when_done=not continuous)


@cli.command()
def tags() -> int:
    """List backup tags."""
    store = _store()
    for tag in store.tags():
        job = store.job_for_tag(tag)
        click.echo(f"{tag}" if job is None else f"{tag}  {job.state.value}  {job.url_display}")
    return exit_codes.OK


@cli.command()
@click.option("-d", "--destcontainer", "url", required=True)
@click.option("--version-timestamps", is_flag=True, help="Show times of versions (needs -C).")
@click.option("--deep", is_flag=True, help="Also check that every file each snapshot names is present.")
@click.option("--json", "as_json", is_flag=True)
@common.cluster_option
@common.blob_credentials_option
@common.encryption_key_option
def describe(
    url: str,
    version_timestamps: bool,
    deep: bool,
    as_json: bool,
    cluster_file: str | None,
    blob_credentials: Sequence[str],
    encryption_key_file: str | None,
) -> int:
    """Describe the backup at a URL: snapshots and restorable versions."""
    plain = open_container(url, credential_files=blob_credentials)
    meta = encryption_of(plain)
    if meta.enabled and encryption_key_file is None:
        # The properties say this much without the key; the snapshots need it.
        show = backup_describe.encryption_json if as_json else backup_describe.encryption_text
        click.echo(show(plain.url, meta), nl=as_json)
        raise key_required(plain.url)
    desc = Catalog(unlock(plain, meta, encryption_key_file)).describe(deep=deep)
    version_time = None
    if version_timestamps:
        driver = connect(common.resolve_cluster_file(cluster_file))
        version_time = driver.time_at_version
    if as_json:
        click.echo(backup_describe.to_json(desc, version_time))
    else:
        click.echo(backup_describe.to_text(desc, version_time), nl=False)
    return exit_codes.OK


@cli.command()
@click.option("-d", "--destcontainer", "url", required=True)
@click.option("--begin", "begin", type=int, default=None, help="Only files ending after this version.")
@click.option("--end", "end", type=int, default=None, help="Only files starting before this version.")
@common.blob_credentials_option
@common.encryption_key_option
def dump(
    url: str, begin: int | None, end: int | None, blob_credentials: Sequence[str], encryption_key_file: str | None
) -> int:
    """List the files of a backup: range, log and snapshot manifest files with sizes."""
    catalog = Catalog(open_backup(url, credential_files=blob_credentials, key_file=encryption_key_file))
    lo, hi = begin if begin is not None else -(2**63), end if end is not None else 2**63 - 1
    for r in catalog.range_files():
        if lo <= r.version < hi:
            click.echo(f"range {r.size} {r.path}")
    for f in catalog.log_files():
        if f.end > lo and f.begin < hi:
            click.echo(f"log {f.size} {f.path}")
    for s in catalog.snapshots():
        if s.end_version >= lo and s.begin_version < hi:
            click.echo(f"snapshotManifest {s.total_bytes} {s.path}")
    return exit_codes.OK


@cli.command()
@click.option("-d", "--destcontainer", "url", required=True)
@common.blob_credentials_option
def delete(url: str, blob_credentials: Sequence[str]) -> int:
    """Delete every file of the backup at a URL."""
    container = open_container(url, credential_files=blob_credentials)
    n = container.destroy()
    click.echo(f"The backup at {redact_url(url)} was deleted ({n} files).")
    return exit_codes.OK


@cli.command(name="list")
@click.option("-b", "--base-url", "base_url", required=True, help="List the backups under this URL.")
@common.blob_credentials_option
def list_cmd(base_url: str, blob_credentials: Sequence[str]) -> int:
    """List the backups under a base URL."""
    for url in list_backups(base_url, credential_files=blob_credentials):
        click.echo(redact_url(url))
    return exit_codes.OK


@cli.command()
@click.option("-d", "--destcontainer", "url", required=True)
@click.option("--expire-before-version", "before_version", type=int, default=None)
@click.option("--expire-before-timestamp", "before_timestamp", default=None, help="YYYY/MM/DD.HH:MI:SS+hhmm (-C).")
@click.option("--delete-before-days", "before_days", type=float, default=None, help="Days before the newest log.")
@click.option("--restorable-after-version", "restorable_after", type=int, default=None)
@click.option("--restorable-after-timestamp", "restorable_after_ts", default=None)
@click.option(
    "--min-restorable-days", "min_restorable_days", type=float, default=None, help="Days before the newest log."
)
@click.option("-f", "--force", is_flag=True, help="Expire even if the backup becomes unrestorable.")
@common.cluster_option
@common.blob_credentials_option
@common.encryption_key_option
def expire(
    url: str,
    before_version: int | None,
    before_timestamp: str | None,
    before_days: float | None,
    restorable_after: int | None,
    restorable_after_ts: str | None,
    min_restorable_days: float | None,
    force: bool,
    cluster_file: str | None,
    blob_credentials: Sequence[str],
    encryption_key_file: str | None,
) -> int:
    """Delete backup data older than a version, keeping what a restore needs."""
    from cli.fdbrestore import parse_timestamp

    container = open_backup(url, credential_files=blob_credentials, key_file=encryption_key_file)
    if before_timestamp or restorable_after_ts:
        driver = connect(common.resolve_cluster_file(cluster_file))
        if before_timestamp:
            before_version = driver.version_at_time(parse_timestamp(before_timestamp))
        if restorable_after_ts:
            restorable_after = driver.version_at_time(parse_timestamp(restorable_after_ts))
    if before_days is not None:
        before_version = _days_before_log_end(container, before_days, "--delete-before-days")
    if min_restorable_days is not None:
        restorable_after = _days_before_log_end(container, min_restorable_days, "--min-restorable-days")
    if before_version is None:
        raise errors.BackupError("No version or date/time is specified.")
    try:
        result = expire_data(container, before_version, restorable_after=restorable_after, force=force)
    except errors.BackupCannotExpire as exc:
        raise errors.BackupCannotExpire(
            "Requested expiration would be unsafe.  Backup would not meet minimum restorability.  "
            f"Use --force to delete data anyway. ({exc.message})"
        ) from None
    if before_days is not None:
        versions = int(before_days * _DAY_VERSIONS)
        click.echo(
            f"All data before {versions} versions ({before_days:g} days) prior to latest backup log has been deleted."
        )
    else:
        click.echo(f"All data before version {before_version} has been deleted.")
    if result.actual_end < result.requested_end:
        click.echo(
            f"NOTE: The requested expiration point (version {result.requested_end}) fell in the middle of a log "
            f"file, so it was moved back to version {result.actual_end} to avoid splitting the file. "
            f"Data is only guaranteed deleted up to version {result.actual_end}."
        )
    elif result.actual_end > result.requested_end:
        click.echo(
            f"NOTE: Data was already expired up to version {result.actual_end}, which is at or after the "
            f"requested version {result.requested_end}. No additional data was deleted."
        )
    return exit_codes.OK


_DAY_VERSIONS = 24 * 3600 * 1_000_000


def _days_before_log_end(container: BackupContainer, days: float, option: str) -> int:
    """FDB's day options count back from the newest log's end version (1,000,000 versions a second)."""
    max_log_end = Catalog(container).describe().max_log_end
    if max_log_end is None:
        raise errors.BackupCannotExpire(f"the backup has no logs to measure {option} from")
    return max_log_end - int(days * _DAY_VERSIONS)


for _command in (
    backup_admin.modify,
    backup_admin.pause,
    backup_admin.resume,
    backup_admin.query,
    backup_admin.cleanup,
):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    code = common.run(cli, argv, prog_name="fdbbackup")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
