"""``embedded-cluster``: run the FoundationDB stand-in and talk to it.

Commands (names and outputs are stable; docs, demos and tests depend on them):

- ``serve --data-dir DIR --cluster-file FILE [--knob_NAME=VALUE ...]``: run a server in the foreground;
- ``exec -C FILE``: one transaction per JSON line on stdin, prints ``{"version": V}`` per transaction;
- ``load -C FILE --keys N``: fill the database, then optionally keep writing at a rate;
- ``checksum -C FILE``: ``{"version": V, "keys": n, "bytes": b, "sha256": h}`` of a range at one version;
- ``status -C FILE [--json]``: version, shards, knobs, log captures, range locks;
- ``bulkdump -C FILE --url URL``: a BulkDump job over a range, one task per shard (fdbcli's ``bulkdump dump``);
  prints ``Received Job ID: <id>`` then a JSON summary;
- ``bulkload -C FILE --url URL --job ID``: load a range from a BulkDump job (fdbcli's ``bulkload load``);
  prints a JSON summary.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from cli.exit_codes import HELP_EPILOG, exit_code_for
from embedded_cluster.client import EmbeddedClusterDriver
from fdbcore import errors
from fdbcore.atomic import versionstamp
from fdbcore.cluster import ClusterDriver, connect
from fdbcore.cluster.checksum import RangeDigest
from fdbcore.cluster.limits import TRANSACTION_SIZE_LIMIT
from fdbcore.keys import USER_END, KeyRange, key_after, printable
from fdbcore.mutations import (
    OP_NAMES,
    VERSIONSTAMP_TYPES,
    Mutation,
    MutationType,
    clear,
    clear_range,
    set_value,
)

P = ParamSpec("P")
R = TypeVar("R")

cluster_file_option = click.option(
    "-C",
    "--cluster-file",
    "cluster_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The cluster file written by `embedded-cluster serve`.",
)


_RANGE_OPTIONS = (
    click.option("--begin", "begin_hex", default="", help="First key, plain hex (default: '')."),
    click.option("--end", "end_hex", default=USER_END.hex(), help="End key, exclusive, plain hex (default: ff)."),
)


def with_range(fn: Callable[P, R]) -> Callable[P, R]:
    """The ``--begin``/``--end`` options (plain hex keys) of the commands that take a key range."""
    for option in reversed(_RANGE_OPTIONS):
        fn = option(fn)
    return fn


blob_credentials_option = click.option(
    "--blob-credentials",
    "blob_credentials",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="FDB blob credentials file for blobstore:// URLs (repeatable; FDB_BLOB_CREDENTIALS is read too).",
)


def fdb_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Print FDB errors as ``ERROR: message (name, code)`` and exit with the mapped status."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except errors.FDBError as exc:
            click.echo(f"ERROR: {exc}", err=True)
            sys.exit(exit_code_for(exc))

    return wrapper


@click.group(epilog=HELP_EPILOG)
def main() -> None:
    """The embedded FoundationDB stand-in: a RocksDB-backed cluster for backup and restore."""


# --- serve ----------------------------------------------------------------------------------------


def _knob_help() -> str:
    from embedded_cluster.knobs import Knobs

    lines = [f"  --knob_{name}={default}: {doc}" for name, default, doc in Knobs.describe()]
    return "Knobs (--knob_NAME=VALUE or --knob-name VALUE):\n\n\b\n" + "\n".join(lines)


@main.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    epilog=HELP_EPILOG,
)
@click.option("--data-dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--cluster-file", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=0, show_default=True, help="Port to listen on (0: any free port).")
@click.option("--log-level", default="INFO", show_default=True)
@blob_credentials_option
@click.pass_context
@fdb_errors
def serve(
    ctx: click.Context,
    data_dir: Path,
    cluster_file: Path,
    host: str,
    port: int,
    log_level: str,
    blob_credentials: tuple[str, ...],
) -> None:
    """Run a cluster in the foreground; write CLUSTER_FILE once it accepts connections; stop on SIGTERM.

    BulkDump and BulkLoad reach backup containers with the server's own credentials: the
    --blob-credentials files, then FDB_BLOB_CREDENTIALS, then boto3's chain.
    """
    from embedded_cluster.knobs import Knobs, parse_knob_args
    from embedded_cluster.server import EmbeddedClusterServer
    from embedded_cluster.server import serve as run

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    knobs = Knobs.from_strings(parse_knob_args(ctx.args))
    run(EmbeddedClusterServer(data_dir, cluster_file, knobs, host=host, port=port, credential_files=blob_credentials))


serve.help = f"{serve.help}\n\n{_knob_help()}"


# --- exec -----------------------------------------------------------------------------------------


def _hex(text: object, where: str) -> bytes:
    if not isinstance(text, str):
        raise errors.InvalidOptionValue(f"{where}: expected a hex string, got {text!r}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise errors.InvalidOptionValue(f"{where}: {text!r} is not plain hex") from None


def parse_op(op: object, where: str) -> Mutation:
    """``["set", k, v]``, ``["clear", k]``, ``["clear_range", b, e]``, ``[<atomic op>, k, param]``."""
    if not isinstance(op, list) or not op or op[0] not in OP_NAMES:
        raise errors.InvalidOptionValue(f"{where}: {op!r} is not [op, hex...] with op in {sorted(OP_NAMES)}")
    name, params = op[0], op[1:]
    arity = 1 if name == "clear" else 2
    if len(params) != arity:
        raise errors.InvalidOptionValue(f"{where}: {name} takes {arity} hex parameter(s)")
    if name == "clear":
        return clear(_hex(params[0], where))
    return Mutation(OP_NAMES[name], _hex(params[0], where), _hex(params[1], where))


@main.command("exec", epilog=HELP_EPILOG)
@cluster_file_option
@fdb_errors
def exec_(cluster_file: Path) -> None:
    """Commit one transaction per JSON line on stdin: {"ops": [["set", "<hex key>", "<hex value>"], ...]}.

    Ops: set, clear (one key), clear_range, add, bit_and, bit_or, bit_xor, append_if_fits, max, min,
    byte_min, byte_max, compare_and_clear, set_versionstamped_key, set_versionstamped_value. Prints
    {"version": <commit version>} per transaction (plus "versionstamp" in hex when it used one).
    """
    driver = connect(cluster_file)
    for lineno, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        where = f"stdin line {lineno}"
        try:
            txn = json.loads(line)
        except json.JSONDecodeError as exc:
            raise errors.InvalidOptionValue(f"{where}: not JSON ({exc})") from None
        if not isinstance(txn, dict) or not isinstance(txn.get("ops"), list):
            raise errors.InvalidOptionValue(f'{where}: expected {{"ops": [...]}}')
        mutations = [parse_op(op, where) for op in txn["ops"]]
        version = driver.commit(mutations)
        out: dict[str, object] = {"version": version}
        if any(m.type in VERSIONSTAMP_TYPES for m in mutations):
            out["versionstamp"] = versionstamp(version).hex()
        click.echo(json.dumps(out))
        sys.stdout.flush()


# --- checksum -------------------------------------------------------------------------------------


def range_checksum(
    driver: ClusterDriver, begin: bytes, end: bytes, version: int | None, chunk_bytes: int = 4 << 20
) -> dict[str, object]:
    """Digest of ``[begin, end)`` read in chunks at one version (the latest when ``version`` is None;
    then a read that outlives the MVCC window starts over at a newer version)."""
    attempts = 1 if version is not None else 5
    for attempt in range(attempts):
        at = version if version is not None else driver.get_read_version()
        digest = RangeDigest()
        cursor = begin
        try:
            while True:
                chunk = driver.get_range(cursor, end, at, limit_bytes=chunk_bytes)
                digest.update(chunk.kvs)
                if not chunk.more:
                    break
                cursor = key_after(chunk.kvs[-1][0])
        except errors.TransactionTooOld:
            if attempt + 1 == attempts:
                raise
            continue
        return {"version": at, "keys": digest.keys, "bytes": digest.bytes, "sha256": digest.hexdigest()}
    raise AssertionError("unreachable")


@main.command(epilog=HELP_EPILOG)
@cluster_file_option
@with_range
@click.option("--version", type=int, default=None, help="Read version (default: the latest).")
@fdb_errors
def checksum(cluster_file: Path, begin_hex: str, end_hex: str, version: int | None) -> None:
    """Print {"version", "keys", "bytes", "sha256"} of a key range at one version.

    sha256 covers, for each key in order, 4-byte big-endian len(key), key, 4-byte big-endian
    len(value), value.
    """
    begin, end = _hex(begin_hex, "--begin"), _hex(end_hex, "--end")
    if begin > end:
        raise errors.InvertedRange(f"--begin {begin_hex} is after --end {end_hex}")
    driver = connect(cluster_file)
    if version is None and isinstance(driver, EmbeddedClusterDriver):
        click.echo(json.dumps(driver.checksum(begin, end)))  # one server-side scan: any size
        return
    click.echo(json.dumps(range_checksum(driver, begin, end, version)))


# --- status ---------------------------------------------------------------------------------------


def status_json(driver: ClusterDriver) -> dict[str, Any]:
    st = driver.status()
    shard_bytes = st.extra.get("shard_bytes", {})
    assert isinstance(shard_bytes, dict)
    return {
        "version": st.version,
        "shards": [
            {
                "id": s.id,
                "begin": s.range.begin.hex(),
                "end": s.range.end.hex(),
                "bytes": shard_bytes.get(s.id),
            }
            for s in st.shards
        ],
        "knobs": st.knobs,
        "captures": st.captures,
        "locks": [{"begin": lk.range.begin.hex(), "end": lk.range.end.hex(), "owner": lk.owner} for lk in st.locks],
        "extra": {k: v for k, v in st.extra.items() if k != "shard_bytes"},
    }


@main.command(epilog=HELP_EPILOG)
@cluster_file_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@fdb_errors
def status(cluster_file: Path, as_json: bool) -> None:
    """Show the version, shards, knobs, active log captures and range locks."""
    doc = status_json(connect(cluster_file))
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    extra = doc["extra"]
    click.echo(f"Cluster {extra.get('cluster_id')} (data directory {extra.get('data_dir')})")
    click.echo(f"Version: {doc['version']}")
    click.echo(f"Oldest readable version: {extra.get('oldest_readable_version')}")
    click.echo(f"Recovered at version: {extra.get('recovery_version')}")
    click.echo(f"Shards: {len(doc['shards'])}")
    for s in doc["shards"]:
        span = f"[{printable(bytes.fromhex(s['begin']))}, {printable(bytes.fromhex(s['end']))})"
        click.echo(f"  {s['id']}  {span}  {s['bytes']} bytes")
    click.echo("Knobs:")
    for name, value in sorted(doc["knobs"].items()):
        click.echo(f"  {name} = {value}")
    click.echo(f"Log captures: {len(doc['captures'])}")
    for c in doc["captures"]:
        ranges = ", ".join(f"[{printable(bytes.fromhex(b))}, {printable(bytes.fromhex(e))})" for b, e in c["ranges"])
        click.echo(f"  {c['id']}  from version {c['begin_version']}  popped to {c['popped_version']}  {ranges}")
    click.echo(f"Range locks: {len(doc['locks'])}")
    for lk in doc["locks"]:
        span = f"[{printable(bytes.fromhex(lk['begin']))}, {printable(bytes.fromhex(lk['end']))})"
        click.echo(f"  {span}  owner {lk['owner']}")


# --- bulkdump / bulkload ---------------------------------------------------------------------------


def _user_range(begin_hex: str, end_hex: str) -> KeyRange:
    begin, end = _hex(begin_hex, "--begin"), _hex(end_hex, "--end")
    if not begin < end <= USER_END:
        raise errors.InvalidOptionValue(f"the range needs --begin < --end <= ff, not [{begin_hex}, {end_hex})")
    return KeyRange(begin, end)


@main.command(epilog=HELP_EPILOG)
@cluster_file_option
@click.option("--url", required=True, help="Backup container: file:///abs/path or blobstore://...")
@with_range
@click.option("--batch-bytes", type=click.IntRange(min=0), default=0, help="Batch size (0: the cluster's knob).")
@blob_credentials_option
@fdb_errors
def bulkdump(
    cluster_file: Path, url: str, begin_hex: str, end_hex: str, batch_bytes: int, blob_credentials: tuple[str, ...]
) -> None:
    """Dump a key range into URL in FDB's BulkDump layout (bulkdump_data/<job>/...), one task per shard,
    in parallel; write job-manifest.txt once every batch is there.

    Prints "Received Job ID: <id>", then {"job_id", "tasks", "batches", "keys", "bytes", "seconds",
    "mb_per_s"}. The cluster writes the data with its own credentials; this command writes the job
    manifest with --blob-credentials.
    """
    from embedded_cluster.bulkjobs import dump_job
    from fdbcore.container import open_container
    from fdbcore.naming import new_uid

    key_range = _user_range(begin_hex, end_hex)
    container = open_container(url, credential_files=blob_credentials)
    job_id = new_uid()
    click.echo(f"Received Job ID: {job_id}")
    sys.stdout.flush()
    summary, _ = dump_job(connect(cluster_file), container, url, key_range, job_id, batch_bytes=batch_bytes)
    click.echo(json.dumps(summary.to_json("batches")))


@main.command(epilog=HELP_EPILOG)
@cluster_file_option
@click.option("--url", required=True, help="The container the dump was written to.")
@click.option("--job", "job_id", required=True, help="The BulkDump job ID.")
@with_range
@blob_credentials_option
@fdb_errors
def bulkload(
    cluster_file: Path, url: str, job_id: str, begin_hex: str, end_hex: str, blob_credentials: tuple[str, ...]
) -> None:
    """Replace a key range with the data of BulkDump job JOB in URL, by SST ingestion (the cluster needs
    --knob_shard_encode_location_metadata=1 and --knob_enable_read_lock_on_range=1).

    Prints {"job_id", "tasks", "files", "keys", "bytes", "seconds", "mb_per_s"}.
    """
    from embedded_cluster.bulkjobs import load_job
    from fdbcore.container import open_container

    key_range = _user_range(begin_hex, end_hex)
    container = open_container(url, credential_files=blob_credentials)
    summary = load_job(connect(cluster_file), container, url, job_id, key_range)
    click.echo(json.dumps(summary.to_json("files")))


# --- load -----------------------------------------------------------------------------------------

LOAD_PREFIX = b"load/"
COUNTERS = 100


def load_key(i: int) -> bytes:
    return LOAD_PREFIX + b"%010d" % i


def counter_key(i: int) -> bytes:
    return LOAD_PREFIX + b"counter/%03d" % i


class Progress:
    """A rich progress bar on a terminal, plain lines (at most one a second) otherwise."""

    def __init__(self, label: str, total: float, unit: str) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.done = 0.0
        self.bytes = 0
        self._started = time.monotonic()
        self._last_line = 0.0
        self._printed: float | None = None
        self._bar: Any = None
        self._task: Any = None

    @contextmanager
    def running(self) -> Iterator[Progress]:
        if sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:.0f}/{task.total:.0f} " + self.unit),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
            ) as bar:
                self._bar = bar
                self._task = bar.add_task(self.label, total=self.total, rate="")
                yield self
        else:
            yield self
            if self._printed != self.done:
                self._line()

    def advance(self, done: float, nbytes: int) -> None:
        """Progress is now ``done`` (of ``total``), after writing ``nbytes`` more bytes."""
        self.done = done
        self.bytes += nbytes
        if self._bar is not None:
            self._bar.update(self._task, completed=done, rate=f"{self._rate():.1f} MB/s")
        elif time.monotonic() - self._last_line >= 1.0:
            self._line()

    def _rate(self) -> float:
        return self.bytes / max(time.monotonic() - self._started, 1e-6) / 1e6

    def _line(self) -> None:
        self._last_line = time.monotonic()
        self._printed = self.done
        click.echo(
            f"{self.label}: {self.done:.0f}/{self.total:.0f} {self.unit}, {self.bytes / 1e6:.1f} MB, "
            f"{self._rate():.1f} MB/s",
            err=True,
        )


def _random_ops(rng: random.Random, count: int, keys: int, value_size: int, boundaries: list[bytes]) -> list[Mutation]:
    """A mix of sets, single clears, clear ranges (some across shard boundaries) and atomic adds."""
    ops: list[Mutation] = []
    key_space = max(1, int(keys * 1.2))
    for _ in range(count):
        roll = rng.random()
        if roll < 0.60:
            ops.append(set_value(load_key(rng.randrange(key_space)), rng.randbytes(value_size)))
        elif roll < 0.70:
            ops.append(clear(load_key(rng.randrange(key_space))))
        elif roll < 0.75:
            # Across a shard boundary when one lies among the load keys (split points are existing keys).
            inside = [b for b in boundaries if b.startswith(LOAD_PREFIX) and b[len(LOAD_PREFIX) :].isdigit()]
            if inside and rng.random() < 0.5:
                center = int(rng.choice(inside)[len(LOAD_PREFIX) :])
            else:
                center = rng.randrange(key_space)
            width = rng.randint(1, 8)
            ops.append(clear_range(load_key(max(0, center - width)), load_key(center + width)))
        else:
            ops.append(
                Mutation(
                    MutationType.ADD_VALUE,
                    counter_key(rng.randrange(COUNTERS)),
                    rng.randint(1, 9).to_bytes(8, "little"),
                )
            )
    return ops


@main.command(epilog=HELP_EPILOG)
@cluster_file_option
@click.option("--keys", type=click.IntRange(min=0), required=True, help="Keys to write first (load/0000000000...).")
@click.option("--value-size", type=click.IntRange(0, 100_000), default=100, show_default=True)
@click.option("--rate", type=click.FloatRange(min=0), default=0.0, help="Then: mutations per second to keep writing.")
@click.option("--duration", type=click.FloatRange(min=0), default=0.0, help="... for this many seconds.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the values and the write mix.")
@click.option("--no-fill", is_flag=True, help="The KEYS keys are already there: only write the mix.")
@click.option(
    "--batch-bytes",
    type=click.IntRange(1_000, TRANSACTION_SIZE_LIMIT // 2),
    default=1_000_000,
    show_default=True,
)
@fdb_errors
def load(
    cluster_file: Path,
    keys: int,
    value_size: int,
    rate: float,
    duration: float,
    seed: int,
    no_fill: bool,
    batch_bytes: int,
) -> None:
    """Fill the database with KEYS keys, then keep writing a mix of sets, clears, clear ranges spanning
    shards and atomic adds at RATE mutations per second for DURATION seconds.

    Prints one JSON line at the end: {"keys", "bytes", "transactions", "mutations", "version"}.
    """
    driver = connect(cluster_file)
    rng = random.Random(seed)
    per_txn = max(1, batch_bytes // (len(load_key(0)) + value_size + 12))
    written = transactions = mutations = 0
    version = driver.get_read_version()
    with Progress("fill", 0 if no_fill else keys, "keys").running() as progress:
        for start in range(0, 0 if no_fill else keys, per_txn):
            batch = [
                set_value(load_key(i), rng.randbytes(value_size)) for i in range(start, min(keys, start + per_txn))
            ]
            version = driver.commit(batch)
            nbytes = sum(len(m.param1) + len(m.param2) for m in batch)
            written += nbytes
            transactions += 1
            mutations += len(batch)
            progress.advance(start + len(batch), nbytes)
    if rate and duration:
        ticks_per_second = 10
        boundaries = [s.range.begin for s in driver.shard_map()]
        started = time.monotonic()
        next_map = started + 2.0
        done = 0
        with Progress("write", duration, "s").running() as progress:
            while (now := time.monotonic()) - started < duration:
                due = int(rate * (now - started)) - done
                nbytes = 0
                if due > 0:
                    batch = _random_ops(rng, due, keys, value_size, boundaries)
                    version = driver.commit(batch)
                    done += due
                    nbytes = sum(len(m.param1) + len(m.param2) for m in batch)
                    written += nbytes
                    transactions += 1
                    mutations += len(batch)
                if now >= next_map:
                    boundaries = [s.range.begin for s in driver.shard_map()]
                    next_map = now + 2.0
                progress.advance(min(duration, now - started), nbytes)
                time.sleep(1 / ticks_per_second)
    summary = {
        "keys": keys,
        "bytes": written,
        "transactions": transactions,
        "mutations": mutations,
        "version": version,
    }
    click.echo(json.dumps(summary))


if __name__ == "__main__":
    main()
