"""The main job, end to end on one machine, with a verdict.

Brings up the local fleet (Redis, an S3 endpoint, a source and a destination embedded cluster, backup
agents, Flower), fills the source while a workload keeps writing, backs it up with ``--mode both``,
restores that backup with ``--mode bulkload`` and with ``--mode rangefile`` into fresh destinations,
and prints one table: time, MB/s, and whether each destination's checksum equals the source's at the
restored version. Exit status 0 only if both restores are exact.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FLEET = ROOT / "deploy" / "local" / "fleet"
console = Console()


def say(text: str) -> None:
    console.print(f"[bold cyan]demo[/]: {text}")


def run(args: list[str], env: dict[str, str], *, check: bool = True, timeout: float = 1800) -> str:
    """Run a console script of this environment; its stderr goes to the terminal."""
    exe = str(BIN / args[0]) if (BIN / args[0]).exists() else args[0]
    proc = subprocess.run([exe, *args[1:]], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise SystemExit(f"demo: `{' '.join(args)}` failed with exit status {proc.returncode}:\n{proc.stdout}")
    return proc.stdout


def checksum(cluster_file: str, env: dict[str, str], version: int | None = None) -> dict[str, Any]:
    """``embedded-cluster checksum``: keys, bytes and SHA-256 of the user keys at a version."""
    args = ["embedded-cluster", "checksum", "-C", cluster_file] + (
        [] if version is None else ["--version", str(version)]
    )
    return dict(json.loads(run(args, env).strip().splitlines()[-1]))


@dataclass
class Row:
    step: str
    seconds: float
    megabytes: float
    verdict: str


def timed_restore(url: str, dest: str, mode: str, env: dict[str, str]) -> tuple[float, int]:
    say(f"restoring with --mode {mode} into {dest}")
    start = time.monotonic()
    out = run(["fdbrestore", "start", "-r", url, "-C", dest, "--mode", mode, "-t", f"demo-{mode}", "-w"], env)
    line = [x for x in out.splitlines() if x.startswith("Restored to version")][-1]
    return time.monotonic() - start, int(line.split()[-1])


def start_cluster(run_dir: Path, name: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """A fresh embedded cluster for the range-file restore (the fleet's own dest gets the BulkLoad)."""
    root = run_dir / name
    cluster_file = root / "fdb.cluster"
    cluster_file.unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    log = open(root / "server.log", "ab")  # noqa: SIM115 - the server outlives this function
    proc = subprocess.Popen(
        [str(BIN / "embedded-cluster"), "serve", "--data-dir", str(root / "data"), "--cluster-file", str(cluster_file)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not cluster_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"demo: the {name} cluster did not start; see {root / 'server.log'}")
        time.sleep(0.05)
    return proc, str(cluster_file)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keys", type=int, default=200_000, help="keys to load (default: %(default)s)")
    p.add_argument("--value-size", type=int, default=100, help="bytes per value (default: %(default)s)")
    p.add_argument("--storage", choices=["s3", "file"], default="s3", help="backup container (default: %(default)s)")
    p.add_argument("--run-dir", default=str(ROOT / "run" / "demo"), help="fleet state, data and logs")
    p.add_argument("--keep", action="store_true", help="leave the fleet running (stop it with the printed command)")
    args = p.parse_args()
    run_dir = Path(args.run_dir).resolve()
    env = dict(os.environ)

    say(f"starting the local fleet in {run_dir}")
    subprocess.run([str(FLEET), "down", "--run-dir", str(run_dir), "--wipe"], cwd=ROOT, stdout=subprocess.DEVNULL)
    up = [str(FLEET), "up", "--run-dir", str(run_dir), "--workers", "2"]
    up += ["--cluster-knob", "source:max_read_transaction_life_versions=600000000"]  # checksum at old versions
    up += ["--s3"] if args.storage == "s3" else []
    subprocess.run(up, cwd=ROOT, check=True)
    plan = json.loads((run_dir / "fleet.json").read_text())
    env.update(
        FDBBR_REDIS_URL=f"redis://127.0.0.1:{plan['redis_port']}",
        FDBBR_LOG_DIR=str(run_dir / "trace"),
    )
    if args.storage == "s3":
        env["FDB_BLOB_CREDENTIALS"] = str(run_dir / "blob-credentials.json")
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        url = f"blobstore://@127.0.0.1:{plan['s3_port']}/demo-{int(time.time())}?bucket=fdbbr&sc=0&region=us-east-1"
    else:
        url = f"file://{run_dir}/backups"
    source = str(run_dir / "source" / "fdb.cluster")
    dest = str(run_dir / "dest" / "fdb.cluster")
    extra: subprocess.Popen[bytes] | None = None
    try:
        say(f"loading {args.keys:,} keys of {args.value_size} bytes into the source")
        run(
            ["embedded-cluster", "load", "-C", source, "--keys", str(args.keys), "--value-size", str(args.value_size)],
            env,
        )
        workload = subprocess.Popen(
            [
                str(BIN / "embedded-cluster"),
                "load",
                "-C",
                source,
                "--keys",
                str(args.keys),
                "--rate",
                "300",
                "--duration",
                "8",
                "--seed",
                "11",
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        say("backing up with --mode both while the workload keeps writing (sets, clears, clear ranges, atomic adds)")
        start = time.monotonic()
        run(["fdbbackup", "start", "-C", source, "-d", url, "--mode", "both", "-w"], env)
        backup_seconds = time.monotonic() - start
        workload.wait(120)
        status = json.loads(run(["fdbbackup", "status", "-C", source, "--json"], env))
        backup_url = status["URL"]
        logical = checksum(source, env)["bytes"] / 1e6

        rows = [
            Row(
                "backup --mode both",
                backup_seconds,
                logical,
                "restorable, BulkLoad-ready" if status["BulkLoadCompatible"] else "restorable, no BulkDump!",
            )
        ]
        verdicts = []
        mismatches: list[str] = []
        for mode, target_cluster in (("bulkload", dest), ("rangefile", None)):
            if target_cluster is None:
                extra, target_cluster = start_cluster(run_dir, "dest-rangefile", env)
            seconds, version = timed_restore(backup_url, target_cluster, mode, env)
            want, got = checksum(source, env, version), checksum(target_cluster, env)
            same = (want["keys"], want["bytes"], want["sha256"]) == (got["keys"], got["bytes"], got["sha256"])
            verdicts.append(same)
            if not same:
                mismatches.append(f"--mode {mode}: the source has {want}, the destination {got}")
            verdict = f"exact at {version}" if same else "MISMATCH (below)"
            rows.append(Row(f"restore --mode {mode}", seconds, got["bytes"] / 1e6, verdict))
    except BaseException:
        if not args.keep:
            subprocess.run([str(FLEET), "down", "--run-dir", str(run_dir)], cwd=ROOT, stdout=subprocess.DEVNULL)
            console.print(f"demo failed; the fleet is stopped, logs are in {run_dir / 'logs'}")
        raise
    finally:
        if extra is not None:
            extra.terminate()
            extra.wait(30)

    # Fits an 80-column terminal: details that do not fit go on the lines after it.
    table = Table(title=f"Backup V3 demo: {args.keys:,} keys, {args.storage} container")
    for col in ("step", "time (s)", "MB/s", "verdict"):
        table.add_column(col, justify="right" if col in ("time (s)", "MB/s") else "left")
    for r in rows:
        table.add_row(r.step, f"{r.seconds:.1f}", f"{r.megabytes / r.seconds:.1f}", r.verdict)
    console.print(table)
    for line in mismatches:
        console.print(f"[red]{line}[/]")
    console.print(f"Backup: {backup_url}")
    console.print(f"Flower: http://127.0.0.1:{plan['flower_port']}  (tasks, workers, /metrics)")
    if args.keep:
        console.print(f"The fleet is still running. Stop it with: deploy/local/fleet down --run-dir {run_dir}")
    else:
        subprocess.run([str(FLEET), "down", "--run-dir", str(run_dir)], cwd=ROOT, stdout=subprocess.DEVNULL)
        console.print(f"Fleet stopped; logs and data stay in {run_dir} (rerun or `deploy/local/fleet down --wipe`).")
    ok = all(verdicts)
    console.print(
        "[bold green]VERDICT: both restores are exact[/]" if ok else "[bold red]VERDICT: a restore differs[/]"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
