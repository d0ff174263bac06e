"""Backup and restore throughput by method, beside the machine's limits (a script: it prints, never asserts).

    python -m benchmarks.backup_restore [--keys 1000000] [--value-size 100] [--scales 1,2,4] [--json out.json]

For each scale it builds one dataset (``keys x scale`` keys) in a source embedded cluster and, with a
real Redis and a real worker fleet:

- backs it up with ``--mode rangefile``, ``--mode bulkdump`` and ``--mode both`` while a workload
  rewrites every key and keeps writing a mix (sets, clears, clear ranges, atomic adds); the snapshot
  time of each method comes from the backup's own record (dispatch to manifest written);
- restores the ``both`` backup with ``--mode rangefile`` and ``--mode bulkload`` into fresh clusters,
  timing verification, the snapshot phase and the log-replay phase apart, and checks each destination
  against the source as it was when that backup ended;
- does all of it again with file-level encryption (``--encryption-key-file``, 1 MiB blocks), each
  encrypted backup right after its plain twin, and prints the encrypted / plain time ratios (every
  backup and restore starts after a ``sync``, so none is billed for the disk writes its predecessor
  left to the kernel);
- measures the limits on the same bytes: a bare ``SstFileWriter`` pass over the pairs (dump limit) and a
  copy of the SST bytes plus an ingest by move into a fresh RocksDB (load limit);
- records the peak RSS of each process role (worker pool process, cluster server, each CLI command).

The source keeps FDB's 5 s MVCC window: the stand-in holds the keys each commit in the window changed
in memory, as FDB's storage servers hold their window, so a wider window would make the server's
memory follow the write rate times the window rather than the dataset.

MB/s counts logical bytes (keys + values) for snapshots and mutation bytes for log replay.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rocksdict import IngestExternalFileOptions, Rdict, SstFileWriter

from embedded_cluster.rocks import rocksdb_options
from fdbcore.formats.sst import sst_options
from fdbcore.naming import new_uid
from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.fleet import Fleet
from tests.fixtures.redis import RedisServer, free_port
from workers.backup.job import BackupJob, Phase, bulkdump_record, rangefile_record
from workers.state import JobStore, connect_state

BIN = Path(sys.executable).parent
BULKLOAD_KNOBS = {"shard_encode_location_metadata": 1, "enable_read_lock_on_range": 1}


@dataclass
class Scale:
    scale: int
    keys: int
    logical_bytes: int = 0
    #: The median of each step's samples (one per repetition).
    seconds: dict[str, float] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)
    verdicts: dict[str, bool] = field(default_factory=dict)

    def record(self, name: str, seconds: float) -> None:
        self.samples.setdefault(name, []).append(seconds)
        self.seconds[name] = statistics.median(self.samples[name])

    def mbps(self, name: str, nbytes: int | None = None) -> float:
        secs = self.seconds.get(name, 0.0)
        return (self.logical_bytes if nbytes is None else nbytes) / secs / 1e6 if secs > 0 else 0.0


class Runner:
    """Runs console scripts and remembers the largest peak RSS each command reached.

    The peak is the child's own ``VmHWM``, sampled every 10 ms while it runs: ``wait4``'s ``ru_maxrss``
    would include this (large) process's memory, which a child carries until its ``exec``.
    """

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.peak_kb: dict[str, int] = {}

    def __call__(self, *args: str, timeout: float = 3600) -> str:
        proc = subprocess.Popen([str(BIN / args[0]), *args[1:]], env=self.env, stdout=subprocess.PIPE, text=True)
        peak = [0]
        sampler = threading.Thread(target=_sample_hwm, args=(proc, peak), daemon=True)
        sampler.start()
        out, _ = proc.communicate(timeout=timeout)
        sampler.join()
        name = " ".join(args[:2])
        self.peak_kb[name] = max(self.peak_kb.get(name, 0), peak[0])
        if proc.returncode != 0:
            raise SystemExit(f"`{' '.join(args)}` exited {proc.returncode}:\n{out}")
        return out


def _sample_hwm(proc: subprocess.Popen[str], peak: list[int]) -> None:
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        with contextlib.suppress(OSError, StopIteration, ValueError):
            line = next(x for x in status.read_text().splitlines() if x.startswith("VmHWM:"))
            peak[0] = max(peak[0], int(line.split()[1]))
        time.sleep(0.01)


def peak_rss_mb(root_pid: int) -> float:
    """Largest VmHWM (peak resident set) among a process and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    peak, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        stack += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak / 1024


def checksum(run: Runner, cluster: EmbeddedCluster, version: int | None = None) -> dict[str, Any]:
    args = ["embedded-cluster", "checksum", "-C", str(cluster.cluster_file)]
    return dict(json.loads(run(*args, *(["--version", str(version)] if version else [])).splitlines()[-1]))


def bare_limits(run_dir: Path, keys: int, value_size: int, out: Scale) -> None:
    """The dump limit (bare SstFileWriter over the pairs) and load limit (copy + ingest by move)."""
    pairs = [(b"load/%010d" % i, os.urandom(value_size)) for i in range(keys)]
    sst = run_dir / "bare.sst"
    start = time.perf_counter()
    writer = SstFileWriter(options=sst_options())  # as BulkDump writes them
    writer.open(str(sst))
    for k, v in pairs:
        writer[k] = v
    writer.finish()
    out.record("limit: dump (SstFileWriter)", time.perf_counter() - start)
    del pairs
    db_dir, copy = run_dir / "bare-db", run_dir / "copy.sst"
    db = Rdict(str(db_dir), rocksdb_options())  # as the cluster opens its store
    start = time.perf_counter()
    shutil.copyfile(sst, copy)
    ingest = IngestExternalFileOptions()
    ingest.set_move_files(True)
    db.ingest_external_file([str(copy)], ingest)
    out.record("limit: load (copy + ingest)", time.perf_counter() - start)
    db.close()
    Rdict.destroy(str(db_dir))
    sst.unlink()


def _label(mode: str, key_file: Path | None) -> str:
    return f"{mode} encrypted" if key_file else mode


def _key_option(key_file: Path | None) -> list[str]:
    return ["--encryption-key-file", str(key_file)] if key_file else []


def backup(
    run: Runner,
    store: JobStore[BackupJob],
    source: EmbeddedCluster,
    mode: str,
    work: Path,
    keys: int,
    out: Scale,
    key_file: Path | None = None,
    *,
    first: bool = True,
) -> str:
    """A backup in ``mode`` (encrypted with ``key_file``) while a workload writes; returns the backup URL.

    The snapshot times are those of the backup's first period, from its records: with ``-z`` the next
    period opens once the first one's range files are done (FDB's continuous snapshots), and status
    shows the newest period.

    During the snapshot a mix of 5,000 mutations per second keeps writing (sets, clears, clear ranges,
    atomic adds). For ``both``, whose backup the restores use, every key is then rewritten once the
    backup is restorable, so the restores' log-replay phase applies as many bytes as the snapshot holds.
    Only the ``first`` repetition does that, and only its time until complete is recorded.
    """
    label = _label(mode, key_file)
    cf, tag = str(source.cluster_file), f"bench-{label.replace(' ', '-')}-{new_uid()[:8]}"
    base = work / f"backup-{tag}"
    mix = ["load", "-C", cf, "--keys", str(keys), "--no-fill", "--rate", "5000", "--duration", "3", "--seed", "5"]
    os.sync()  # the step before this one does not leave its deferred disk writes to be timed here
    workload = subprocess.Popen([str(BIN / "embedded-cluster"), *mix], env=run.env, stdout=subprocess.DEVNULL)
    run("fdbbackup", "start", "-C", cf, "-d", f"file://{base}", "--mode", mode, "-t", tag, "-z", *_key_option(key_file))
    if workload.wait(3600) != 0:
        raise SystemExit("the workload failed")
    if mode == "both" and first:
        run("fdbbackup", "status", "-C", cf, "-t", tag, "-w")  # returns once the backup is restorable
        run("embedded-cluster", "load", "-C", cf, "--keys", str(keys), "--seed", "9")
    run("fdbbackup", "discontinue", "-C", cf, "-t", tag, "-w")
    doc = json.loads(run("fdbbackup", "status", "-C", cf, "-t", tag, "--json"))
    t = doc["Times"]
    if mode in ("rangefile", "both"):
        rf = rangefile_record(store, doc["UID"], 1).get()
        assert rf.phase == Phase.COMPLETE and rf.finished_at is not None, rf
        out.record(f"backup {label}: range files", rf.finished_at - rf.started_at)
        if not key_file:
            out.bytes["range files"] = rf.total_bytes
    if mode in ("bulkdump", "both"):
        bd = bulkdump_record(store, doc["UID"], 1).get()
        assert bd.phase == Phase.COMPLETE and bd.finished_at is not None, bd
        out.record(f"backup {label}: BulkDump", bd.finished_at - bd.started_at)
        if not key_file:
            out.bytes["BulkDump SSTs"] = bd.total_bytes
    if first:
        out.record(f"backup {label}: until complete", t["completed_at"] - t["created_at"])
    return str(doc["URL"])


def restore(
    run: Runner,
    url: str,
    dest: EmbeddedCluster,
    mode: str,
    want: dict[str, Any],
    out: Scale,
    key_file: Path | None = None,
) -> None:
    label = _label(mode, key_file)
    tag = f"bench-{label.replace(' ', '-')}-{new_uid()[:8]}"
    where = ["-r", url, "-C", str(dest.cluster_file)]
    os.sync()  # as before a backup
    run("fdbrestore", "start", *where, "--mode", mode, "-t", tag, "-w", *_key_option(key_file))
    [doc] = json.loads(run("fdbrestore", "status", "-t", tag, "--json"))
    t = doc["Times"]
    out.record(f"restore {label}: verify", t["verified_at"] - t["started_at"])
    out.record(f"restore {label}: snapshot", t["snapshot_done_at"] - t["verified_at"])
    out.record(f"restore {label}: log replay", t["completed_at"] - t["snapshot_done_at"])
    out.bytes[f"replayed by {label}"] = doc["ReplayedMutationBytes"]
    out.bytes["log files"] = doc["LogFileBytes"]
    got = checksum(run, dest)
    exact = (want["keys"], want["sha256"]) == (got["keys"], got["sha256"])
    out.verdicts[label] = out.verdicts.get(label, True) and exact


def run_scale(scale: int, base_keys: int, value_size: int, root: Path, repeat: int) -> Scale:
    work = root / f"scale-{scale}"
    work.mkdir(parents=True)
    out = Scale(scale, base_keys * scale)
    redis = RedisServer(free_port(), work, persistent=False)
    redis.start()
    clusters: list[EmbeddedCluster] = []
    fleet = Fleet(redis.url, work / "fleet")
    fleet.workdir.mkdir()
    try:
        source = EmbeddedCluster(work / "source", {})  # FDB's 5 s MVCC window
        clusters.append(source)
        source.root.mkdir()
        source.start()
        run = Runner(fleet.env)
        store = JobStore(connect_state(f"{redis.url}/2"), "backup", BackupJob)  # where the CLIs keep job state
        run(
            "embedded-cluster",
            "load",
            "-C",
            str(source.cluster_file),
            "--keys",
            str(out.keys),
            "--value-size",
            str(value_size),
        )
        time.sleep(5)  # shards split as the data arrives; let them settle
        out.logical_bytes = checksum(run, source)["bytes"]
        worker = fleet.start_worker("bench", concurrency=2)
        key = work / "backup.key"
        key.write_bytes(os.urandom(32))
        both: dict[Path | None, tuple[str, dict[str, Any]]] = {}
        for mode in ("rangefile", "bulkdump", "both"):
            for n in range(repeat):
                for key_file in (None, key):  # each encrypted backup right after its plain twin
                    url = backup(run, store, source, mode, work, out.keys, out, key_file, first=n == 0)
                    if mode == "both" and n == 0:
                        # Nothing writes to the source once a backup is discontinued: its state now is
                        # its state at the newest version that backup restores to.
                        both[key_file] = (url, checksum(run, source))
                    elif n > 0:
                        shutil.rmtree(urlparse(url).path, ignore_errors=True)  # only timed
        for mode, knobs in (("rangefile", {}), ("bulkload", BULKLOAD_KNOBS)):
            for n in range(repeat):
                for key_file, (url, want) in both.items():
                    dest = EmbeddedCluster(work / f"dest-{mode}-{'enc' if key_file else 'plain'}-{n}", knobs)
                    clusters.append(dest)
                    dest.root.mkdir()
                    dest.start()
                    restore(run, url, dest, mode, want, out, key_file)
                    dest.close()  # its background compactions would otherwise slow the next restore
                    shutil.rmtree(dest.root, ignore_errors=True)
        assert worker.proc.pid
        out.rss_mb["worker (largest pool process)"] = peak_rss_mb(worker.proc.pid)
        out.rss_mb["cluster server (source)"] = peak_rss_mb(source.process.pid if source.process else 0)
        for command in ("fdbbackup start", "fdbbackup status", "fdbrestore start", "embedded-cluster checksum"):
            out.rss_mb[f"CLI {command}"] = run.peak_kb[command] / 1024
        bare_limits(work, out.keys, value_size, out)
    finally:
        fleet.stop()
        for c in clusters:
            c.close()
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    return out


def ratios(s: Scale) -> dict[str, float]:
    sec = s.seconds

    def div(a: str, b: str) -> float:
        return sec[b] / sec[a] if sec.get(a) else 0.0

    def both(a1: str, a2: str, b1: str, b2: str) -> float:
        ours = sec.get(a1, 0) + sec.get(a2, 0)
        return (sec.get(b1, 0) + sec.get(b2, 0)) / ours if ours else 0.0

    def restore_total(label: str) -> float:
        return sum(sec.get(f"restore {label}: {phase}", 0.0) for phase in ("verify", "snapshot", "log replay"))

    encrypted = {
        f"encrypted / plain time, backup {mode}: {part}": div(
            f"backup {mode}: {part}", f"backup {mode} encrypted: {part}"
        )
        for mode, part in (
            ("rangefile", "range files"),
            ("bulkdump", "BulkDump"),
            ("both", "range files"),
            ("both", "BulkDump"),
        )
    }
    for method in ("rangefile", "bulkload"):
        plain = restore_total(method)
        encrypted[f"encrypted / plain time, restore {method} (all phases)"] = (
            restore_total(f"{method} encrypted") / plain if plain else 0.0
        )
    return {
        "BulkDump speed-up over range files (mode rangefile vs bulkdump)": div(
            "backup bulkdump: BulkDump", "backup rangefile: range files"
        ),
        "BulkLoad speed-up over range-file restore (snapshot phase)": div(
            "restore bulkload: snapshot", "restore rangefile: snapshot"
        ),
        "BulkLoad speed-up over range-file restore (verify + snapshot)": both(
            "restore bulkload: verify",
            "restore bulkload: snapshot",
            "restore rangefile: verify",
            "restore rangefile: snapshot",
        ),
        "BulkDump / dump limit": div("backup bulkdump: BulkDump", "limit: dump (SstFileWriter)"),
        "BulkLoad / load limit": div("restore bulkload: snapshot", "limit: load (copy + ingest)"),
        "dual-dataset size (range files + SSTs) / range files": (
            (s.bytes.get("range files", 0) + s.bytes.get("BulkDump SSTs", 0)) / s.bytes["range files"]
            if s.bytes.get("range files")
            else 0.0
        ),
        **encrypted,
    }


def table(results: Sequence[Scale]) -> str:
    names = sorted({n for r in results for n in r.seconds}, key=lambda n: (n.startswith("limit"), n))
    first, last = results[0], results[-1]
    growth = len(results) > 1
    head = f"{'':58}" + "".join(f"{f'{r.scale}x ({r.keys:,} keys)':>30}" for r in results)
    head += f"{f'{last.scale}x / {first.scale}x':>14}" if growth else ""
    lines = [head, f"{'':58}" + "".join(f"{'seconds':>15}{'MB/s':>15}" for _ in results)]
    for n in names:
        cells = []
        for r in results:
            replay = n.endswith("log replay")
            nbytes = r.bytes.get(f"replayed by {n[len('restore ') : n.index(':')]}") if replay else None
            cells.append(f"{r.seconds.get(n, 0):15.2f}{r.mbps(n, nbytes):15.1f}")
        grew = f"{last.seconds.get(n, 0) / first.seconds[n]:14.2f}" if growth and first.seconds.get(n) else ""
        lines.append(f"{n:58}" + "".join(cells) + grew)
    lines.append("")
    for name in ratios(results[0]):
        lines.append(f"{name:58}" + "".join(f"{ratios(r)[name]:29.2f}x" for r in results))
    lines.append("")
    for role in results[0].rss_mb:
        grew = f"{last.rss_mb[role] / first.rss_mb[role]:14.2f}" if growth and first.rss_mb[role] else ""
        rss = "".join(f"{r.rss_mb[role]:30.0f}" for r in results)
        lines.append(f"{'peak RSS, ' + role + ' (MB)':58}" + rss + grew)
    for mode in results[0].verdicts:
        verdict = ["exact" if r.verdicts[mode] else "MISMATCH" for r in results]
        lines.append(f"{'restore ' + mode + ' equals the source':58}" + "".join(f"{v:>30}" for v in verdict))
    return "\n".join(lines)


def machine() -> dict[str, str]:
    mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem.split(":", 1)[1].strip(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keys", type=int, default=1_000_000, help="keys at scale 1 (default: %(default)s)")
    p.add_argument("--value-size", type=int, default=100)
    p.add_argument("--scales", default="1,2,4", help="comma-separated multiples of --keys (default: %(default)s)")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--work-dir", default=None, help="where the clusters live (default: a temporary directory)")
    p.add_argument(
        "--repeat", type=int, default=3, help="runs of each backup and restore; the table shows medians (default: 3)"
    )
    args = p.parse_args(argv)
    root = Path(args.work_dir or tempfile.mkdtemp(prefix="fdbbr-bench-"))
    results = []
    for scale in (int(s) for s in args.scales.split(",")):
        print(f"scale {scale}x: {args.keys * scale:,} keys ...", flush=True)
        results.append(run_scale(scale, args.keys, args.value_size, root, args.repeat))
    print(table(results))
    if args.json:
        doc = {
            "machine": machine(),
            "value_size": args.value_size,
            "results": [{**r.__dict__, "ratios": ratios(r)} for r in results],
        }
        Path(args.json).write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
