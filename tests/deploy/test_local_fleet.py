"""The local fleet for real: ``deploy/local/fleet up`` in a temporary run directory, every service
answering, a backup and a BulkLoad restore through it, then ``down`` leaving no process behind.

It needs Debian's ``redis-server`` (``scripts/bootstrap.sh`` installs it) and fails, not skips,
without it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.checks import DEPLOY

FLEET = DEPLOY / "local" / "fleet"
BIN = Path(sys.executable).parent


def fleet(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``deploy/local/fleet`` from an unrelated directory, with the Python running the tests."""
    env = {**os.environ, "FLEET_PYTHON": sys.executable}
    return subprocess.run([str(FLEET), *args], cwd="/", env=env, capture_output=True, text=True, timeout=timeout)


def tool(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(BIN / args[0]), *args[1:]], env=env, capture_output=True, text=True, timeout=timeout, cwd="/"
    )
    assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200, url
        return str(resp.read().decode())


def source_env(env_file: Path) -> dict[str, str]:
    """The environment after ``. run/env``, as a shell sees it."""
    out = subprocess.run(
        ["bash", "-c", f". {env_file} && env -0"], capture_output=True, check=True, env={"PATH": os.environ["PATH"]}
    ).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


# --- processes --------------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int, str] | None:
    """(state, process group, start time) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[2]), fields[19]


def fleet_processes(status: dict[str, Any], run_dir: Path) -> dict[int, str]:
    """supervisord and every process in its programs' process groups (pool children included):
    pid -> start time, so a recycled pid is not mistaken for a survivor."""
    supervisord = int((run_dir / "supervisord.pid").read_text())
    groups = {supervisord} | {int(p["pid"]) for p in status["processes"]}
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st and (st[1] in groups or int(entry.name) == supervisord):
                found[int(entry.name)] = st[2]
    return found


def survivors(processes: dict[int, str]) -> list[int]:
    alive = []
    for pid, started in processes.items():
        st = _stat(pid)
        if st and st[2] == started and st[0] != "Z":
            alive.append(pid)
    return alive


# --- the test ---------------------------------------------------------------------------------------


def check_services(info: dict[str, Any]) -> None:
    assert redis.Redis.from_url(info["redis_url"]).ping()
    for cluster_file in info["cluster_files"].values():
        assert "Version:" in tool("embedded-cluster", "status", "-C", cluster_file).stdout
    control = Celery(broker=f"{info['redis_url']}/0", set_as_current=False)
    try:
        replies = control.control.ping(destination=info["agents"], timeout=5.0) or []
    finally:
        control.close()
    assert {name for reply in replies for name in reply} == set(info["agents"]) == {f"agent-1@{info['hostname']}"}
    assert http_get(info["flower_url"] + "/healthcheck").strip() == "OK"
    assert "flower_events_total" in http_get(info["flower_url"] + "/metrics")
    http_get(info["metrics_urls"][0])  # the agent's /metrics is served (its series are checked after a backup)


def backup_and_restore(info: dict[str, Any], env: dict[str, str]) -> None:
    """A small mode-both backup to the fleet's S3 endpoint, encrypted with the fleet's key, and a BulkLoad
    restore into dest: the credentials and the key reach agents and clusters through their files alone."""
    env = {**env, "PATH": os.environ["PATH"]}
    ops = [["set", f"{i:04d}".encode().hex(), os.urandom(32).hex()] for i in range(200)]
    subprocess.run(
        [str(BIN / "embedded-cluster"), "exec", "-C", env["FDB_CLUSTER_FILE"]],
        input=json.dumps({"ops": ops}) + "\n",
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    url = env["FLEET_BLOBSTORE_URL"]
    key = ["--encryption-key-file", env["FLEET_ENCRYPTION_KEY_FILE"]]
    tool("fdbbackup", "start", "-d", url, "--mode", "both", "-w", *key, env=env, timeout=180)
    assert "File-level encryption: true" in tool("fdbbackup", "describe", "-d", url, *key, env=env).stdout
    tool("fdbrestore", "start", "-r", url, "-C", env["DEST_CLUSTER_FILE"], "--mode", "bulkload", "-w", *key, env=env)
    src = json.loads(tool("embedded-cluster", "checksum", "-C", env["FDB_CLUSTER_FILE"]).stdout)
    dst = json.loads(tool("embedded-cluster", "checksum", "-C", env["DEST_CLUSTER_FILE"]).stdout)
    assert (src["keys"], src["sha256"]) == (dst["keys"], dst["sha256"]) and src["keys"] == 200
    check_metrics(http_get(info["metrics_urls"][0]), http_get(info["flower_url"] + "/metrics"))


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def check_metrics(agent_text: str, flower_text: str) -> None:
    """After a mode-both backup and a BulkLoad restore, the documented series (docs/monitoring.md) that
    a healthy run must move are all present and above zero."""
    got = samples(agent_text)

    def value(name: str, **labels: str) -> float:
        return got.get((name, frozenset(labels.items())), 0.0)

    for phase in ("rangefile", "bulkdump", "bulkload"):
        assert value("fdbbr_bytes_written_total", phase=phase) > 0, phase
    assert value("fdbbr_files_written_total", phase="mutationlog") > 0
    assert value("fdbbr_bytes_read_total", phase="rangefile") > 0
    assert value("fdbbr_files_read_total", phase="bulkload") > 0
    assert value("fdbbr_bulkdump_snapshots_total", outcome="complete") >= 1
    assert value("fdbbr_bulkload_restores_total", outcome="complete") >= 1
    for operation, method in (("backup", "rangefile"), ("backup", "bulkdump"), ("restore", "bulkload")):
        assert value("fdbbr_snapshot_throughput_bytes_per_second", operation=operation, method=method) > 0
    assert value("fdbbr_dual_dataset_overhead_ratio") > 1
    flower = samples(flower_text)
    started = [
        v
        for (name, labels), v in flower.items()
        if name == "flower_events_total" and ("task", "backup.start") in labels
    ]
    assert started and sum(started) > 0


@pytest.mark.timeout(240)
def test_local_fleet_up_check_down_up_again(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run scripts/bootstrap.sh (apt-get install redis-server)")
    run_dir = tmp_path / "run"
    up = fleet("up", "--run-dir", str(run_dir), "--workers", "1", "--s3")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        info = json.loads((run_dir / "fleet.json").read_text())
        printed = [*info["cluster_files"].values(), info["redis_url"], info["blobstore_url"], info["flower_url"]]
        assert all(value in up.stdout for value in [*printed, info["env_file"]]), up.stdout
        check_services(info)

        env = source_env(Path(info["env_file"]))
        assert env["FDBBR_REDIS_URL"] == info["redis_url"]
        assert env["FDB_CLUSTER_FILE"] == info["cluster_files"]["source"]
        assert env["DEST_CLUSTER_FILE"] == info["cluster_files"]["dest"]
        assert env["FDB_BLOB_CREDENTIALS"] == info["blob_credentials"]
        assert Path(info["blob_credentials"]).stat().st_mode & 0o077 == 0, "credentials readable by others"
        assert (
            env["FLEET_ENCRYPTION_KEY_FILE"] == info["encryption_key_file"] and info["encryption_key_file"] in up.stdout
        )
        key = Path(info["encryption_key_file"]).read_bytes()
        assert len(key) == 32 and Path(info["encryption_key_file"]).stat().st_mode & 0o077 == 0
        backup_and_restore(info, env)

        again = fleet("up", "--run-dir", str(run_dir), "--workers", "1", "--s3")
        assert again.returncode == 0 and "already running" in again.stdout, again.stdout + again.stderr
        status = fleet("status", "--run-dir", str(run_dir), "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        doc = json.loads(status.stdout)
        assert doc["healthy"] and len(doc["processes"]) == 6
        processes = fleet_processes(doc, run_dir)
        assert len(processes) > 7  # supervisord, 6 programs, pool children

        # No credential on a command line, in the generated configuration or in a log.
        secret = json.loads(Path(info["blob_credentials"]).read_text())["accounts"]["@127.0.0.1"]["secret"]
        for pid in processes:
            assert secret.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        for path in [run_dir / "supervisord.conf", run_dir / "env", run_dir / "fleet.json", *run_dir.glob("logs/*")]:
            assert secret not in path.read_text(errors="replace"), path
            assert key not in path.read_bytes() and key.hex() not in path.read_text(errors="replace"), path

        redis.Redis.from_url(info["redis_url"] + "/3").set("fleet-test", "kept")
    finally:
        down = fleet("down", "--run-dir", str(run_dir))
    assert down.returncode == 0 and "fleet stopped" in down.stdout, down.stdout + down.stderr
    assert survivors(processes) == []
    twice = fleet("down", "--run-dir", str(run_dir))
    assert twice.returncode == 0 and "not running" in twice.stdout
    assert fleet("status", "--run-dir", str(run_dir)).returncode == 3

    # The same run directory again: Redis (AOF) and the clusters kept their data.
    up = fleet("up", "--run-dir", str(run_dir), "--workers", "1")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        info = json.loads((run_dir / "fleet.json").read_text())
        assert redis.Redis.from_url(info["redis_url"] + "/3").get("fleet-test") == b"kept"
        src = json.loads(tool("embedded-cluster", "checksum", "-C", info["cluster_files"]["source"]).stdout)
        assert src["keys"] == 200
        assert Path(info["encryption_key_file"]).read_bytes() == key, "the key must outlive down/up"
    finally:
        down = fleet("down", "--run-dir", str(run_dir), "--wipe")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not run_dir.exists()
