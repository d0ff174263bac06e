"""What every producer CLI shares: FDB's option spellings, cluster-file lookup, errors and exits.

FDB's tools accept ``--dest_cluster_file`` and ``--dest-cluster-file`` alike; we normalize
underscores in long option names before click parses them. Every failure ends up in
:func:`run`, which prints ``ERROR: <message> (<name>, <code>)`` to stderr and exits with the code
:mod:`cli.exit_codes` assigns.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import click

from cli import exit_codes
from config import get_settings
from fdbcore import errors
from fdbcore.container import without_secret
from fdbcore.keys import KeyRange, parse_key_range_option
from workers import trace
from workers.record import Record
from workers.state import JobStore, connect_state

E = TypeVar("E", bound=StrEnum)
R = TypeVar("R", bound=Record)
T = TypeVar("T")

#: Where FDB looks for a cluster file when ``-C`` is not given (after ``FDB_CLUSTER_FILE``).
DEFAULT_CLUSTER_FILES = ("fdb.cluster", "/etc/foundationdb/fdb.cluster")


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """``--some_option[=v]`` -> ``--some-option[=v]``, as FDB's option parser allows."""
    out = []
    for arg in argv:
        if arg.startswith("--") and "_" in arg.split("=", 1)[0]:
            name, eq, value = arg.partition("=")
            arg = name.replace("_", "-") + eq + value
        out.append(arg)
    return out


def resolve_cluster_file(option: str | None) -> str:
    """``-C``, else ``FDB_CLUSTER_FILE``, else FDB's default locations; it must exist."""
    candidates = [option] if option else [os.environ.get("FDB_CLUSTER_FILE", ""), *DEFAULT_CLUSTER_FILES]
    for c in candidates:
        if c and Path(c).is_file():
            return str(Path(c).resolve())
    if option:
        raise errors.NoClusterFileFound(f"cluster file {option} does not exist")
    raise errors.NoClusterFileFound(
        "no cluster file: pass -C, set FDB_CLUSTER_FILE, or create ./fdb.cluster or /etc/foundationdb/fdb.cluster"
    )


def parse_keys_options(values: Sequence[str]) -> list[KeyRange]:
    """``-k`` values: each holds one or more ``<BEGIN> <END>`` pairs separated by spaces."""
    ranges = []
    for value in values:
        tokens = value.split()
        if not tokens or len(tokens) % 2:
            raise errors.InvalidOptionValue(
                f'-k {value!r}: key ranges are pairs of keys separated by spaces, "<BEGIN> <END>"'
            )
        for b, e in zip(tokens[::2], tokens[1::2], strict=True):
            ranges.append(parse_key_range_option(f"{b} {e}"))
    return ranges


def state_store(kind: str, record: type[R]) -> JobStore[R]:
    """The fleet's job state for one kind of job (``FDBBR_REDIS_URL``)."""
    return JobStore(connect_state(get_settings().state_url), kind, record)


def parse_mode(cls: type[E], value: str, what: str, hints: Mapping[str, str] = {}) -> E:
    """A ``--mode`` value, or FDB's ``Unknown <what> mode`` error listing the valid ones."""
    try:
        return cls(value)
    except ValueError:
        valid = ", ".join(m.value for m in cls)
        hint = f". {hints[value]}" if value in hints else ""
        raise errors.InvalidOptionValue(f"Unknown {what} mode '{value}'. Valid modes are: {valid}{hint}") from None


def poll(load: Callable[[], T], done: Callable[[T], bool], show: Callable[[T], None], interval: float) -> T:
    """Load, show and return the value once ``done``; otherwise sleep ``interval`` and load again."""
    while True:
        value = load()
        show(value)
        if done(value):
            return value
        time.sleep(interval)


def configure_trace(log: bool, logdir: str | None) -> None:
    """``--log`` writes JSON trace events to ``--logdir`` (default: the current directory), like FDB."""
    if log:
        trace.configure(logdir or ".")


def run(command: click.Command, argv: Sequence[str] | None = None, prog_name: str | None = None) -> int:
    """Parse, run, and turn every failure into FDB-style text and our exit code."""
    args = normalize_argv(sys.argv[1:] if argv is None else argv)
    try:
        result = command.main(args, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return exit_codes.INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return exit_codes.USAGE
    except errors.FDBError as exc:
        click.echo(f"ERROR: {exc}", err=True)
        return exit_codes.exit_code_for(exc)
    except KeyboardInterrupt:
        return exit_codes.INTERRUPTED
    return int(result) if isinstance(result, int) else exit_codes.OK


def cluster_option(func: Callable[..., object]) -> Callable[..., object]:
    return click.option(
        "-C", "--cluster-file", "cluster_file", default=None, help="The cluster file (or FDB_CLUSTER_FILE)."
    )(func)


def blob_credentials_option(func: Callable[..., object]) -> Callable[..., object]:
    return click.option(
        "--blob-credentials",
        "blob_credentials",
        multiple=True,
        help="Blob store credentials file in FDB's JSON format (repeatable; also FDB_BLOB_CREDENTIALS).",
    )(func)


def encryption_key_option(func: Callable[..., object]) -> Callable[..., object]:
    """``--encryption-key-file``, on every command that reads or writes a backup's file contents."""
    return click.option(
        "--encryption-key-file",
        "encryption_key_file",
        default=None,
        help="File holding the 32-byte key of file-level encryption (AES-256-GCM). Needed exactly when the "
        "backup is encrypted; every backup agent and cluster server must hold the same file at the same path.",
    )(func)


def note_url_secret(url: str) -> None:
    """Say what the agents need when a URL carries a secret: job records keep the URL without it."""
    if without_secret(url) != url:
        click.echo(
            "NOTE: The secret in the URL is not stored with the job. Backup agents (and, for BulkDump and "
            "BulkLoad, the cluster) find the credentials for the URL's key in their own blob credentials files "
            "(FDB_BLOB_CREDENTIALS or --blob-credentials) or their AWS environment.",
            err=True,
        )


def log_options(func: Callable[..., object]) -> Callable[..., object]:
    func = click.option("--logdir", default=None, help="Directory for trace files (with --log).")(func)
    func = click.option("--log", is_flag=True, help="Write JSON trace events.")(func)
    return click.option("--trace-format", type=click.Choice(["json"]), default="json", hidden=True)(func)


def keys_file_option(func: Callable[..., object]) -> Callable[..., object]:
    return click.option(
        "--keys-file",
        "keys_file",
        default=None,
        help='A file of key ranges "<BEGIN> <END>", separated by ";" or new lines (with or instead of -k).',
    )(func)


def key_ranges(keys: Sequence[str], keys_file: str | None) -> list[KeyRange]:
    """``-k`` values and the ranges of ``--keys-file`` (FDB reads the file as one ``-k`` value whose
    ranges are separated by ``;``; a new line separates them here too)."""
    ranges = parse_keys_options(keys)
    if keys_file is None:
        return ranges
    try:
        text = Path(keys_file).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.InvalidOptionValue(f"--keys-file {keys_file}: cannot read it: {exc}") from None
    pieces = [p.strip() for line in text.splitlines() for p in line.split(";") if p.strip()]
    if not pieces:
        raise errors.InvalidOptionValue(f"--keys-file {keys_file} holds no key range")
    try:
        return ranges + parse_keys_options(pieces)
    except errors.FDBError as exc:
        raise type(exc)(f"--keys-file {keys_file}: {exc.message}") from None
