"""``fdbrestore``: restore a backup into a cluster (the producer; the fleet does the work).

Subcommands, options and messages follow FDB 8.0's ``fdbrestore`` (``fdb-formats.md`` §5.2).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime

import click

from cli import common, exit_codes, restore_options
from cli.fdbtext import format_bytes_human
from cli.progress import LiveProgress
from cli.restore_status import NO_RESTORES, full_status_text, progress_text, rollback_text, status_json
from config import get_settings
from fdbcore import errors
from fdbcore.backup_encryption import encryption_of, unlock
from fdbcore.cluster import connect
from fdbcore.container import open_container
from fdbcore.encryption import EncryptionSettings, read_key_file
from fdbcore.keys import parse_printable, printable
from fdbcore.modes import RestoreMode
from workers.restore import control
from workers.restore.job import RestoreJob, RestoreState, Rewrite
from workers.state import ErrorRecord, JobStore

MODES = ", ".join(m.value for m in RestoreMode)
#: Backup-side mode words a user may type by mistake, with what they mean here.
MODE_HINTS = {
    "bulkdump": "A BulkDump snapshot is restored with --mode bulkload",
    "both": "Choose one method: --mode bulkload (BulkDump snapshot) or --mode rangefile (range files)",
}


def _store() -> JobStore[RestoreJob]:
    return common.state_store("restore", RestoreJob)


def parse_timestamp(text: str) -> float:
    """FDB's ``YYYY/MM/DD.HH:MI:SS+hhmm``."""
    try:
        return datetime.strptime(text, "%Y/%m/%d.%H:%M:%S%z").timestamp()
    except ValueError:
        raise errors.InvalidOptionValue(
            f"timestamp '{text}' is not in the form YYYY/MM/DD.HH:MI:SS+hhmm (e.g. 2026/11/25.17:02:35+0000)"
        ) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=exit_codes.HELP_EPILOG)
@click.version_option(package_name="fdb-backup-v3", prog_name="fdbrestore")
def cli() -> None:
    """FoundationDB restore: start | status | abort | wait."""


def _dest_option(func: Callable[..., object]) -> Callable[..., object]:
    return click.option(
        "-C",
        "--cluster-file",
        "--dest-cluster-file",
        "cluster_file",
        default=None,
        help="The cluster file to restore data into.",
    )(func)


@cli.command(epilog=exit_codes.HELP_EPILOG)
@click.option("-r", "url", required=True, help="The backup URL to restore from.")
@_dest_option
@click.option("-t", "--tagname", "tag", default="default", show_default=True)
@click.option("-v", "--version", "version", type=int, default=None, help="Target version (default: the newest).")
@click.option("--timestamp", default=None, help="Target time, YYYY/MM/DD.HH:MI:SS+hhmm (needs --orig-cluster-file).")
@click.option("--orig-cluster-file", default=None, help="The backed-up cluster, to map --timestamp to a version.")
@click.option("-k", "--keys", "keys", multiple=True, help='Key ranges "<BEGIN> <END>" to restore (repeatable).')
@common.keys_file_option
@click.option("--add-prefix", default="", help="Prefix to add to the restored keys.")
@click.option("--remove-prefix", default="", help="Prefix to remove from the restored keys.")
@click.option("-w", "--waitfordone", "wait", is_flag=True, help="Wait for the restore to complete; print progress.")
@click.option("-n", "--dryrun", is_flag=True, help="Check that the restore is possible, change nothing.")
@click.option("--mode", "mode_text", default="rangefile", show_default=True, help=f"Snapshot method: {MODES}.")
@restore_options.selection_options
@common.blob_credentials_option
@common.encryption_key_option
@common.log_options
def start(
    url: str,
    cluster_file: str | None,
    tag: str,
    version: int | None,
    timestamp: str | None,
    orig_cluster_file: str | None,
    keys: Sequence[str],
    keys_file: str | None,
    add_prefix: str,
    remove_prefix: str,
    wait: bool,
    dryrun: bool,
    mode_text: str,
    selection: restore_options.Chosen,
    blob_credentials: Sequence[str],
    encryption_key_file: str | None,
    log: bool,
    logdir: str | None,
    trace_format: str,
) -> int:
    """Start a restore."""
    common.configure_trace(log, logdir)
    if encryption_key_file is not None:
        read_key_file(encryption_key_file)  # a bad key file is named before anything is contacted
    mode = common.parse_mode(RestoreMode, mode_text, "restore", MODE_HINTS)
    if version is not None and timestamp is not None:
        raise errors.RestoreError("Restore target version and target timestamp cannot both be specified")
    if timestamp is not None:
        if not orig_cluster_file:
            raise errors.RestoreError(
                f"An original cluster file must be given in order to resolve restore target timestamp '{timestamp}'"
            )
        version = connect(common.resolve_cluster_file(orig_cluster_file)).version_at_time(parse_timestamp(timestamp))
        click.echo(f"Timestamp '{timestamp}' resolves to version {version}")
    dest = common.resolve_cluster_file(cluster_file)
    driver = connect(dest)
    plain = open_container(url, credential_files=blob_credentials)
    meta = encryption_of(plain)
    container = unlock(plain, meta, encryption_key_file)
    req = control.RestoreRequest(
        tag=tag,
        url=url,
        cluster_file=dest,
        mode=mode,
        target_version=version,
        ranges=selection.ranges(common.key_ranges(keys, keys_file)),
        rewrite=Rewrite(parse_printable(remove_prefix), parse_printable(add_prefix)),
        credential_files=blob_credentials,
        encryption=None if encryption_key_file is None else EncryptionSettings.of(encryption_key_file, meta.block_size),
        selection=selection.selection(mode),
        force=selection.force,
    )
    try:
        plan = control.check(container, driver, req)
    except (errors.RestoreInvalidVersion, errors.RestoreMissingData) as exc:
        if dryrun and version is not None:
            click.echo(
                f"Insufficient data to restore to version {version}.  Describe backup for more information.", err=True
            )
        raise exc
    if dryrun:
        click.echo(f"Backup can be used to restore to version {plan.target_version}")
        for h in control.holdings(driver, req):
            if h.keys:
                click.echo(replaced_text(h))
        return exit_codes.OK
    store = _store()
    uid = control.submit(store, req, plan)
    common.note_url_secret(url)
    from tasks.restore import start as start_task

    start_task.apply_async((uid,))
    if not wait:
        click.echo(f"Restore of tag `{tag}' to version {plan.target_version} was successfully submitted (UID {uid}).")
        return exit_codes.OK
    return _wait(store, tag, verbose=True)


def replaced_text(h: control.Holding) -> str:
    """A dry run's line per destination range that holds data: what the restore would replace."""
    where = f"Range '{printable(h.range.begin)}'-'{printable(h.range.end)}'"
    human = f" ({format_bytes_human(h.bytes)})" if h.bytes >= 1024 else ""
    return f"{where} would be replaced: it holds {h.keys} keys, {h.bytes} bytes{human} now"


def _started(store: JobStore[RestoreJob], job: RestoreJob) -> int:
    return len(store.results(job.uid, "bulkload_started"))


def _wait(store: JobStore[RestoreJob], tag: str, *, verbose: bool) -> int:
    """Follow the restore until it ends: bars on a terminal, FDB's progress text otherwise."""
    shown = ""

    def show(job: RestoreJob | None) -> None:
        nonlocal shown
        if job is None:
            return
        if not live.plain:
            _bars(live, store, job)
            return
        text = progress_text(job, _started(store, job))
        if verbose and text != shown:
            click.echo(text)
            shown = text

    with LiveProgress() as live:
        job = common.poll(lambda: store.job_for_tag(tag), lambda j: j is None or j.settled, show, 1.0)
    if job is None:
        click.echo(f"waitRestore: Tag: {tag}  State: uninitialized")
        return exit_codes.NOT_FOUND
    return _outcome(store, job)


def _bars(live: LiveProgress, store: JobStore[RestoreJob], job: RestoreJob) -> None:
    if job.mode == RestoreMode.RANGEFILE:
        live.update("Snapshot (range files)", job.blocks_done, job.blocks_total, "blocks")
    else:
        live.update("Snapshot (BulkLoad)", job.tasks_done, job.tasks_total, "tasks")
    done = len(store.results(job.uid, "replay"))
    live.update("Mutation log replay", done, job.streams, f"{job.bytes_written >> 20} MiB written")


def _outcome(store: JobStore[RestoreJob], job: RestoreJob) -> int:
    if job.state == RestoreState.COMPLETED:
        click.echo(f"Restored to version {job.target_version}")
        return exit_codes.OK
    errs = store.errors(job.uid)
    if errs:
        e = errs[-1]
        click.echo(f"ERROR: {e.message} ({e.name}, {e.code})", err=True)
        return exit_codes.exit_code_for(errors.error_for_code(e.code, e.message))
    click.echo(f"ERROR: the restore on tag `{job.tag}' was aborted", err=True)
    return exit_codes.FAILED


@cli.command()
@_dest_option
@click.option("-t", "--tagname", "tag", default=None, help="Only this tag (default: every restore tag).")
@click.option("--json", "as_json", is_flag=True)
def status(cluster_file: str | None, tag: str | None, as_json: bool) -> int:
    """Show restores and their progress."""
    store = _store()
    tags = [tag] if tag else store.tags()
    jobs = [j for j in (store.job_for_tag(t) for t in tags) if j is not None]
    if as_json:
        click.echo(json.dumps([status_json(j, _started(store, j), store.errors(j.uid)) for j in jobs], indent=2))
        return exit_codes.OK
    if not jobs:
        click.echo(NO_RESTORES)
        return exit_codes.OK
    for j in jobs:
        click.echo(full_status_text(j, _started(store, j), store.errors(j.uid)) + "\n\n")
    return exit_codes.OK


@cli.command()
@_dest_option
@click.option("-t", "--tagname", "tag", default="default")
def abort(cluster_file: str | None, tag: str) -> int:
    """Abort the restore on a tag."""
    store = _store()
    job = store.job_for_tag(tag)
    driver = connect(job.cluster_file if job else common.resolve_cluster_file(cluster_file))
    if job is not None and job.active:
        store.add_error(job.uid, ErrorRecord(time.time(), "abort", "task_interrupted", 2382, "aborted by operator"))
    job = control.abort(store, driver, tag, get_settings().task_time_limit * 1000)
    click.echo(f"RESTORE_ABORT Tag: {tag}  State: {job.state.value}")
    if job.state == RestoreState.ABORTED:
        click.echo(rollback_text(job))
    return exit_codes.OK


@cli.command(name="wait")
@_dest_option
@click.option("-t", "--tagname", "tag", default="default")
def wait_cmd(cluster_file: str | None, tag: str) -> int:
    """Wait for the restore on a tag to finish, printing progress."""
    return _wait(_store(), tag, verbose=True)


def main(argv: Sequence[str] | None = None) -> int:
    code = common.run(cli, argv, prog_name="fdbrestore")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
