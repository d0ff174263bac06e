"""Restore into a live cluster: what a workload on other ranges feels, and what the workload costs the restore.

    python -m benchmarks.live_restore [--keys 1000000] [--value-size 100] [--rate 200] [--json out.json]

A script: it prints, never asserts. With a real Redis, a real worker fleet and embedded clusters it
backs up ``--keys`` keys (the range ``load/``) with ``--mode both`` while a write mix runs, then, per
restore method (BulkLoad, range files), restores ``load/`` with ``-k`` twice into a fresh destination
that holds other data (the workload's keys) and, unless ``--empty-range``, an older copy of
``load/`` for the restore to replace (set aside, cleared, loaded, logs replayed):

- idle: nothing else runs; the restore's time is the baseline;
- live: a workload (:class:`tests.support.live.Workload`) reads and writes its own keys at a fixed
  rate, checked against its model, before, during and after the restore.

It prints the workload's p50/p99 latency and error count per phase, the restore's time live and idle,
and the ratios beside the issue's targets (p99 during the BulkLoad restore <= 3x the p99 before it,
restore time <= 1.5x idle, no workload errors); and whether each restored range equals the source.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fdbcore.keys import KeyRange, printable
from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.fleet import Fleet
from tests.fixtures.redis import RedisServer, free_port
from tests.support.live import PhaseStats, Workload, percentile

BIN = Path(sys.executable).parent
BULKLOAD_KNOBS = {"shard_encode_location_metadata": 1, "enable_read_lock_on_range": 1}
RESTORED = KeyRange(b"load/", b"load0")
WORKLOAD_PREFIX = b"live/"
PHASES = ("before", "during", "after")
#: Seconds the workload runs alone before and after each live restore.
QUIET_SECONDS = 10.0


@dataclass
class Run:
    method: str
    live: bool
    seconds: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=dict)
    #: Each restore phase's start and end (unix time), to place the workload's operations in them.
    phase_windows: dict[str, tuple[float, float]] = field(default_factory=dict)
    exact: bool = False
    set_aside_keys: int = 0
    workload: dict[str, PhaseStats] = field(default_factory=dict)
    workload_ok: bool = True


def cli(env: dict[str, str], *args: str, timeout: float = 7200) -> str:
    res = subprocess.run([str(BIN / args[0]), *args[1:]], env=env, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise SystemExit(f"`{' '.join(args)}` exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
    return res.stdout


def range_digest(env: dict[str, str], cluster: EmbeddedCluster, r: KeyRange) -> dict[str, Any]:
    out = cli(
        env,
        "embedded-cluster",
        "checksum",
        "-C",
        str(cluster.cluster_file),
        "--begin",
        r.begin.hex(),
        "--end",
        r.end.hex(),
    )
    return dict(json.loads(out.splitlines()[-1]))


def make_backup(env: dict[str, str], source: EmbeddedCluster, keys: int, value_size: int, work: Path) -> str:
    cf = str(source.cluster_file)
    cli(env, "embedded-cluster", "load", "-C", cf, "--keys", str(keys), "--value-size", str(value_size))
    time.sleep(5)  # shards split as the data arrives; let them settle
    base = work / "backup"
    mix = ["load", "-C", cf, "--keys", str(keys), "--no-fill", "--rate", "2000", "--duration", "3", "--seed", "5"]
    writer = subprocess.Popen([str(BIN / "embedded-cluster"), *mix], env=env, stdout=subprocess.DEVNULL)
    cli(env, "fdbbackup", "start", "-C", cf, "-d", f"file://{base}", "--mode", "both", "-z")
    if writer.wait(3600) != 0:
        raise SystemExit("the write mix failed")
    cli(env, "fdbbackup", "discontinue", "-C", cf, "-w")
    return str(json.loads(cli(env, "fdbbackup", "status", "-C", cf, "--json"))["URL"])


def destination(work: Path, name: str, env: dict[str, str], keys: int, value_size: int, stale: bool) -> EmbeddedCluster:
    """A fresh destination: the workload's keys and, unless not ``stale``, an older ``load/`` to replace."""
    dest = EmbeddedCluster(work / name, BULKLOAD_KNOBS)
    dest.root.mkdir()
    dest.start()
    if stale:
        cf = str(dest.cluster_file)
        cli(
            env,
            "embedded-cluster",
            "load",
            "-C",
            cf,
            "--keys",
            str(keys),
            "--value-size",
            str(value_size),
            "--seed",
            "3",
        )
    return dest


def restore(env: dict[str, str], url: str, dest: EmbeddedCluster, method: str, tag: str, out: Run) -> None:
    keys = f"{printable(RESTORED.begin)} {printable(RESTORED.end)}"
    args = ["-r", url, "-C", str(dest.cluster_file), "--mode", method, "-k", keys, "-t", tag, "-w"]
    cli(env, "fdbrestore", "start", *args)
    [doc] = json.loads(cli(env, "fdbrestore", "status", "-t", tag, "--json"))
    t = doc["Times"]
    out.seconds = t["completed_at"] - t["created_at"]
    out.phase_windows = {
        "queued + start": (t["created_at"], t["started_at"]),
        "verify": (t["started_at"], t["verified_at"]),
        "set aside + clear": (t["verified_at"], t["prepared_at"]),
        "snapshot (load)": (t["prepared_at"], t["snapshot_done_at"]),
        "log replay + finish": (t["snapshot_done_at"], t["completed_at"]),
    }
    out.phase_seconds = {name: end - begin for name, (begin, end) in out.phase_windows.items()}
    out.set_aside_keys = doc["OldContentsKeys"]


def one_run(
    env: dict[str, str], url: str, work: Path, args: argparse.Namespace, method: str, live: bool, want: dict[str, Any]
) -> Run:
    out = Run(method, live)
    name = f"{method}-{'live' if live else 'idle'}"
    dest = destination(work, name, env, args.keys, args.value_size, not args.empty_range)
    try:
        workload = Workload(dest.cluster_file, WORKLOAD_PREFIX, keys=args.workload_keys, rate=args.rate)
        workload.fill()
        if live:
            workload.start()
            time.sleep(QUIET_SECONDS)
            workload.phase = "during"
        restore(env, url, dest, method, name, out)
        if live:
            workload.phase = "after"
            time.sleep(QUIET_SECONDS)
            workload.stop()
            out.workload = workload.stats
            try:
                workload.check_final(dest.driver)
            except AssertionError as exc:
                print(f"workload check failed ({name}): {exc}", file=sys.stderr)
                out.workload_ok = False
        got = range_digest(env, dest, RESTORED)
        out.exact = (got["keys"], got["sha256"]) == (want["keys"], want["sha256"])
    finally:
        dest.close()
        shutil.rmtree(dest.root, ignore_errors=True)
    return out


def report(runs: Sequence[Run], args: argparse.Namespace) -> str:
    by = {(r.method, r.live): r for r in runs}
    lines = [
        f"restore of {args.keys:,} keys ({'into an empty range' if args.empty_range else 'replacing an older copy'}), "
        f"workload {args.rate:g} ops/s on {args.workload_keys:,} other keys",
        "",
    ]
    lines.append(f"{'':34}{'idle s':>10}{'live s':>10}{'live/idle':>11}{'target':>9}")
    for method in ("bulkload", "rangefile"):
        idle, live = by.get((method, False)), by.get((method, True))
        if idle is None or live is None:
            continue
        ratio = live.seconds / idle.seconds if idle.seconds else 0.0
        lines.append(
            f"{'restore ' + method + ' (total)':34}{idle.seconds:10.2f}{live.seconds:10.2f}{ratio:10.2f}x{'<=1.5x':>9}"
        )
        for phase in idle.phase_seconds:
            lines.append(f"{'  ' + phase:34}{idle.phase_seconds[phase]:10.2f}{live.phase_seconds[phase]:10.2f}")
    lines += ["", f"{'workload':34}{'ops':>8}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}"]
    for method in ("bulkload", "rangefile"):
        live = by.get((method, True))
        if live is None:
            continue
        for phase in PHASES:
            s = live.workload.get(phase, PhaseStats())
            lines.append(
                f"{method + ' restore: ' + phase:34}{len(s.latencies):8}{s.percentile(50) * 1e3:10.2f}"
                f"{s.percentile(99) * 1e3:10.2f}{len(s.errors):8}"
            )
        during_ops = live.workload.get("during", PhaseStats())
        for phase, (begin, end) in live.phase_windows.items():
            lat = during_ops.between(begin, end)
            p50, p99, worst = percentile(lat, 50) * 1e3, percentile(lat, 99) * 1e3, max(lat, default=0) * 1e3
            lines.append(f"{'  during ' + phase:34}{len(lat):8}{p50:10.2f}{p99:10.2f}{'max ' + f'{worst:.0f}':>12}")
        before = live.workload.get("before", PhaseStats()).percentile(99)
        during = during_ops.percentile(99)
        target = "<=3x" if method == "bulkload" else ""
        lines.append(f"{'  p99 during / before':34}{'':8}{during / before if before else 0.0:19.2f}x{target:>9}")
    lines.append("")
    for r in runs:
        kind = "live" if r.live else "idle"
        errs = sum(len(s.errors) for s in r.workload.values())
        verdict = "exact" if r.exact else "MISMATCH"
        model = (
            "" if not r.live else f", workload {'matches its model' if r.workload_ok else 'MISMATCH'}, {errs} errors"
        )
        lines.append(f"{r.method} {kind}: restored range {verdict}, {r.set_aside_keys:,} old keys set aside{model}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys in the restored range")
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--rate", type=float, default=200.0, help="workload operations per second")
    parser.add_argument("--workload-keys", type=int, default=10_000)
    parser.add_argument("--empty-range", action="store_true", help="the destination range starts empty")
    parser.add_argument("--methods", default="bulkload,rangefile")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="live-restore-", dir=args.work_dir))
    redis = RedisServer(free_port(), work, persistent=False)
    redis.start()
    fleet = Fleet(redis.url, work / "fleet")
    fleet.workdir.mkdir()
    source = EmbeddedCluster(work / "source", {})
    runs: list[Run] = []
    try:
        source.root.mkdir()
        source.start()
        fleet.start_worker("bench", concurrency=2)
        env = fleet.env
        url = make_backup(env, source, args.keys, args.value_size, work)
        want = range_digest(env, source, RESTORED)  # nothing writes to the source any more
        source.close()
        for method in args.methods.split(","):
            for live in (False, True):
                runs.append(one_run(env, url, work, args, method, live, want))
                print(f"{method} {'live' if live else 'idle'}: {runs[-1].seconds:.2f} s", file=sys.stderr)
    finally:
        fleet.stop()
        source.close()
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(report(runs, args))
    if args.json:
        doc = [
            {
                "method": r.method,
                "live": r.live,
                "seconds": r.seconds,
                "phases": r.phase_seconds,
                "exact": r.exact,
                "workload": {
                    p: {
                        "ops": len(s.latencies),
                        "p50": s.percentile(50),
                        "p99": s.percentile(99),
                        "errors": len(s.errors),
                    }
                    for p, s in r.workload.items()
                },
            }
            for r in runs
        ]
        args.json.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
