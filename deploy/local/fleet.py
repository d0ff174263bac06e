"""The local fleet: Redis, an optional S3 endpoint, two embedded clusters, backup agents and Flower on one
machine, run by supervisord. Use it through ``deploy/local/fleet`` (any working directory)::

    deploy/local/fleet up [--run-dir DIR] [--workers N] [--s3]   # start, wait until ready, print URLs
    deploy/local/fleet status [--json]                           # what runs where (exit 3: not running)
    deploy/local/fleet logs [PROGRAM...] [-n N] [-f]             # tail the programs' logs
    deploy/local/fleet down [--wipe]                             # stop everything (safe to repeat)

Everything lives in the run directory (default ``<repo>/run/fleet``): the supervisord and Redis
configurations, Redis's append-only file, each cluster's data directory and cluster file, logs, trace
files, Prometheus multiprocess files, ``fleet.json`` (ports and URLs, for scripts) and ``env`` (source
it to point ``fdbbackup``/``fdbrestore`` at this fleet). Ports are chosen free on the first ``up``
(or taken from FLEET_REDIS_PORT, FLEET_FLOWER_PORT, FLEET_S3_PORT) and reused by later ones while
they stay free. No secret appears on a command line, in the supervisord configuration or in a log:
the S3 endpoint's (fake) credentials are in the run directory's blob-credentials file only, and the
key for file-level encryption in its ``encryption.key`` (made once, kept across ``up``s, so encrypted
backups stay restorable; every program of the fleet reads that same path).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xmlrpc.client
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEFAULT_RUN_DIR = ROOT / "run" / "fleet"
CLUSTERS = ("source", "dest")
#: The destination runs with the knobs BulkLoad requires (see ``embedded-cluster bulkload --help``).
CLUSTER_KNOBS: dict[str, dict[str, int]] = {
    "source": {},
    "dest": {"shard_encode_location_metadata": 1, "enable_read_lock_on_range": 1},
}
S3_BUCKET = "fdbbr"
S3_REGION = "us-east-1"
#: moto accepts any key; these are fake and live only in the run directory's credentials file.
S3_FAKE_ACCOUNT = {"api_key": "fleet-local-key", "secret": "fleet-local-secret"}
#: Variables the fleet sets itself; inherited values would point processes elsewhere.
FLEET_OWNED_ENV = (
    "FDBBR_REDIS_URL",
    "FDBBR_BROKER_URL",
    "FDBBR_RESULT_BACKEND",
    "FDBBR_STATE_URL",
    "FDBBR_LOG_DIR",
    "FDBBR_METRICS_PORT",
    "FDBBR_METRICS_ADDRESS",
    "FDB_CLUSTER_FILE",
    "FDB_BLOB_CREDENTIALS",
    "PROMETHEUS_MULTIPROC_DIR",
)
#: What ``down --wipe`` removes from the run directory (nothing else there is touched).
OWNED_PATHS = (
    "fleet.json",
    "env",
    "supervisord.conf",
    "supervisord.pid",
    "supervisor.sock",
    "redis.conf",
    "blob-credentials.json",
    "encryption.key",
    "redis",
    "source",
    "dest",
    "logs",
    "trace",
    "prometheus",
)
NOT_RUNNING = 3  # LSB's "program is not running" status


class FleetError(Exception):
    """A failure the user can act on; printed without a traceback."""


# --- the plan: ports, paths and URLs ------------------------------------------------------------------


@dataclass
class Plan:
    """Everything ``up`` starts, and where; saved as ``fleet.json``."""

    run_dir: str
    workers: int
    concurrency: int
    s3: bool
    redis_port: int
    flower_port: int
    s3_port: int
    cluster_ports: dict[str, int]
    metrics_ports: list[int]
    hostname: str = field(default_factory=socket.gethostname)
    stop_timeout: int = 30
    #: Extra ``--knob_NAME=VALUE`` per cluster, from ``up --cluster-knob CLUSTER:NAME=VALUE``.
    extra_knobs: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return Path(self.run_dir)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}"

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.flower_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}" if self.s3 else ""

    @property
    def blobstore_url(self) -> str:
        """A secret-free URL for a backup named ``backup``; the key comes from the credentials file."""
        if not self.s3:
            return ""
        return f"blobstore://@127.0.0.1:{self.s3_port}/backup?bucket={S3_BUCKET}&sc=0&region={S3_REGION}"

    @property
    def credentials_file(self) -> Path:
        return self.dir / "blob-credentials.json"

    @property
    def encryption_key_file(self) -> Path:
        """32 random bytes for ``--encryption-key-file``; agents and clusters read it at this path."""
        return self.dir / "encryption.key"

    @property
    def agent_names(self) -> list[str]:
        return [f"agent-{i}@{self.hostname}" for i in range(1, self.workers + 1)]

    @property
    def program_count(self) -> int:
        return 1 + int(self.s3) + len(CLUSTERS) + self.workers + 1

    @property
    def metrics_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}/metrics" for p in self.metrics_ports]

    def cluster_dir(self, name: str) -> Path:
        return self.dir / name

    def cluster_file(self, name: str) -> Path:
        return self.cluster_dir(name) / "fdb.cluster"

    @property
    def socket_path(self) -> Path:
        """supervisord's control socket; outside the run directory when that path is too long for AF_UNIX."""
        path = self.dir / "supervisor.sock"
        if len(str(path)) < 100:
            return path
        digest = hashlib.sha256(str(self.dir).encode()).hexdigest()[:16]
        return Path("/tmp") / f"fdbbr-fleet-{digest}.sock"

    def summary(self) -> dict[str, Any]:
        """The machine-readable view (``fleet.json``, ``status --json``)."""
        doc = asdict(self)
        doc.update(
            redis_url=self.redis_url,
            flower_url=self.flower_url,
            s3_endpoint=self.s3_endpoint,
            blobstore_url=self.blobstore_url,
            blob_credentials=str(self.credentials_file) if self.s3 else "",
            encryption_key_file=str(self.encryption_key_file),
            cluster_files={name: str(self.cluster_file(name)) for name in CLUSTERS},
            agents=self.agent_names,
            metrics_urls=self.metrics_urls,
            env_file=str(self.dir / "env"),
            log_dir=str(self.dir / "logs"),
        )
        return doc


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port(taken: set[int]) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            return port


class _Ports:
    """Ports for one plan: an env override, else the previous plan's while free, else a new free one."""

    def __init__(self) -> None:
        self.taken: set[int] = set()

    def pick(self, previous: int | None, env_name: str | None = None) -> int:
        raw = os.environ.get(env_name, "") if env_name else ""
        if raw:
            try:
                port = int(raw)
            except ValueError:
                raise FleetError(f"{env_name}={raw!r} is not a port number") from None
            if not _port_free(port):
                raise FleetError(f"{env_name}={port}: the port is in use")
        elif previous and previous not in self.taken and _port_free(previous):
            port = previous
        else:
            port = _free_port(self.taken)
        self.taken.add(port)
        return port


def load_plan(run_dir: Path) -> Plan | None:
    path = run_dir / "fleet.json"
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    fields = Plan.__dataclass_fields__
    return Plan(**{k: v for k, v in doc.items() if k in fields})


def parse_cluster_knobs(specs: Sequence[str]) -> dict[str, dict[str, str]]:
    """``CLUSTER:NAME=VALUE`` options as {cluster: {knob: value}}."""
    out: dict[str, dict[str, str]] = {}
    for spec in specs:
        cluster, _, assignment = spec.partition(":")
        name, eq, value = assignment.partition("=")
        if cluster not in CLUSTERS or not name or not eq:
            raise FleetError(
                f"--cluster-knob {spec!r}: expected CLUSTER:NAME=VALUE with CLUSTER in {', '.join(CLUSTERS)}"
            )
        out.setdefault(cluster, {})[name] = value
    return out


def make_plan(
    run_dir: Path,
    workers: int,
    concurrency: int,
    s3: bool,
    stop_timeout: int,
    extra_knobs: dict[str, dict[str, str]] | None = None,
) -> Plan:
    prev = load_plan(run_dir)
    ports = _Ports()
    old_metrics = prev.metrics_ports if prev else []
    return Plan(
        run_dir=str(run_dir),
        workers=workers,
        concurrency=concurrency,
        s3=s3,
        redis_port=ports.pick(prev.redis_port if prev else None, "FLEET_REDIS_PORT"),
        flower_port=ports.pick(prev.flower_port if prev else None, "FLEET_FLOWER_PORT"),
        s3_port=ports.pick(prev.s3_port if prev else None, "FLEET_S3_PORT") if s3 else 0,
        cluster_ports={n: ports.pick(prev.cluster_ports.get(n) if prev else None) for n in CLUSTERS},
        metrics_ports=[ports.pick(old_metrics[i] if i < len(old_metrics) else None) for i in range(workers)],
        stop_timeout=stop_timeout,
        extra_knobs=extra_knobs or {},
    )


# --- configuration files --------------------------------------------------------------------------------


def tool(name: str) -> str:
    """A console script of this environment (next to its Python), else one on PATH."""
    candidate = BIN / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if not found:
        hint = "apt-get install redis-server" if name == "redis-server" else "pip install -e '.[dev]'"
        raise FleetError(f"{name} not found (run scripts/bootstrap.sh, or {hint})")
    return found


def render_redis_conf(plan: Plan) -> str:
    """Redis for Celery: persistent (AOF, fsync every second) and never evicting a key."""
    return "\n".join(
        [
            f"port {plan.redis_port}",
            "bind 127.0.0.1",
            "protected-mode yes",
            "daemonize no",
            'logfile ""',
            f"dir {plan.dir / 'redis'}",
            "appendonly yes",
            "appendfsync everysec",
            "maxmemory-policy noeviction",
            'save ""',
            "",
        ]
    )


def _sv(text: str) -> str:
    """A value for supervisord's configuration, whose parser expands %(name)s."""
    return text.replace("%", "%%")


def _command(args: Sequence[str]) -> str:
    return _sv(" ".join(shlex.quote(a) for a in args))


def _environment(env: dict[str, str]) -> str:
    for key, value in env.items():
        if '"' in value or "\n" in value:
            raise FleetError(f"{key}: a value with quotes or newlines cannot go into supervisord's configuration")
    return _sv(",".join(f'{k}="{v}"' for k, v in env.items()))


def fleet_env(plan: Plan) -> dict[str, str]:
    """FDBBR_* and FDB_* variables every fleet process and CLI shares."""
    env = {"FDBBR_REDIS_URL": plan.redis_url, "FDBBR_LOG_DIR": str(plan.dir / "trace")}
    if plan.s3:
        env["FDB_BLOB_CREDENTIALS"] = str(plan.credentials_file)
    return env


def programs(plan: Plan) -> dict[str, tuple[list[str], dict[str, str], int]]:
    """Program name -> (argv, extra environment, supervisord priority)."""
    progs: dict[str, tuple[list[str], dict[str, str], int]] = {
        "redis": ([tool("redis-server"), str(plan.dir / "redis.conf")], {}, 10)
    }
    if plan.s3:
        progs["s3"] = ([tool("moto_server"), "-H", "127.0.0.1", "-p", str(plan.s3_port)], {}, 10)
    for name in CLUSTERS:
        argv = [tool("embedded-cluster"), "serve", "--data-dir", str(plan.cluster_dir(name) / "data")]
        argv += ["--cluster-file", str(plan.cluster_file(name)), "--port", str(plan.cluster_ports[name])]
        if plan.s3:
            argv.append(f"--blob-credentials={plan.credentials_file}")
        knobs = {**{k: str(v) for k, v in CLUSTER_KNOBS[name].items()}, **plan.extra_knobs.get(name, {})}
        argv += [f"--knob_{knob}={value}" for knob, value in knobs.items()]
        progs[f"cluster-{name}"] = (argv, {}, 20)
    for i, (node, port) in enumerate(zip(plan.agent_names, plan.metrics_ports, strict=True), 1):
        argv = [tool("backup_agent"), "--name", node, "--concurrency", str(plan.concurrency), "--loglevel", "INFO"]
        env = {
            **fleet_env(plan),
            "FDBBR_METRICS_PORT": str(port),
            "FDBBR_METRICS_ADDRESS": "127.0.0.1",
            "PROMETHEUS_MULTIPROC_DIR": str(plan.dir / "prometheus" / f"agent-{i}"),
        }
        progs[f"agent-{i}"] = (argv, env, 30)
    flower = [tool("celery"), "-A", "tasks", "flower", "--address=127.0.0.1", f"--port={plan.flower_port}"]
    progs["flower"] = (flower, fleet_env(plan), 40)
    return progs


def render_supervisord_conf(plan: Plan) -> str:
    logs = plan.dir / "logs"
    lines = [
        "; Generated by deploy/local/fleet; rewritten by every `up`.",
        "[unix_http_server]",
        f"file={_sv(str(plan.socket_path))}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={_sv(str(logs / 'supervisord.log'))}",
        f"pidfile={_sv(str(plan.dir / 'supervisord.pid'))}",
        f"childlogdir={_sv(str(logs))}",
        f"directory={_sv(str(ROOT))}",
        "nodaemon=false",
        "loglevel=info",
        # No IMDS probes from boto3 (nothing here runs on a cloud instance), unbuffered Python logs.
        "environment=" + _environment({"AWS_EC2_METADATA_DISABLED": "true", "PYTHONUNBUFFERED": "1"}),
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{_sv(str(plan.socket_path))}",
        "",
    ]
    progs = programs(plan)
    for name, (argv, env, priority) in progs.items():
        lines += [
            f"[program:{name}]",
            f"command={_command(argv)}",
            f"directory={_sv(str(ROOT))}",
            f"priority={priority}",
            "autostart=true",
            "autorestart=true",
            "startsecs=1",
            "startretries=3",
            # Celery's warm shutdown: SIGTERM to the main process only; the pool goes with it, and
            # whatever is left of the process group is killed after stopwaitsecs. A task cut short
            # here is redelivered (late acks) and every task is idempotent.
            "stopsignal=TERM",
            f"stopwaitsecs={plan.stop_timeout}",
            "stopasgroup=false",
            "killasgroup=true",
            f"stdout_logfile={_sv(str(logs / (name + '.log')))}",
            "stdout_logfile_maxbytes=50MB",
            "stdout_logfile_backups=3",
            "redirect_stderr=true",
        ]
        if env:
            lines.append("environment=" + _environment(env))
        lines.append("")
    agents = [n for n in progs if n.startswith("agent-")]
    lines += ["[group:agents]", f"programs={','.join(agents)}", ""]
    return "\n".join(lines)


def render_env_file(plan: Plan, passthrough: dict[str, str]) -> str:
    """``. run/env``: the fleet's variables for fdbbackup/fdbrestore and scripts."""
    env = {
        **passthrough,
        "FDBBR_REDIS_URL": plan.redis_url,
        "FDB_CLUSTER_FILE": str(plan.cluster_file("source")),
        "DEST_CLUSTER_FILE": str(plan.cluster_file("dest")),
        "FLEET_RUN_DIR": str(plan.dir),
        "FLEET_FLOWER_URL": plan.flower_url,
        "FLEET_ENCRYPTION_KEY_FILE": str(plan.encryption_key_file),
    }
    if plan.s3:
        env["FDB_BLOB_CREDENTIALS"] = str(plan.credentials_file)
        env["FLEET_BLOBSTORE_URL"] = plan.blobstore_url
    lines = ["# Generated by deploy/local/fleet up; source it: . " + shlex.quote(str(plan.dir / "env"))]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    return "\n".join(lines) + "\n"


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (created with that mode, never readable in between)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _make_key(path: Path) -> None:
    """A new random key, readable by its owner only; an existing key is kept (its backups need it)."""
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))


def write_files(plan: Plan, passthrough: dict[str, str]) -> None:
    d = plan.dir
    for sub in ("redis", "logs", "trace", *CLUSTERS):
        (d / sub).mkdir(parents=True, exist_ok=True)
    # Fresh multiprocess metrics on every start: stale files would add dead processes' values.
    shutil.rmtree(d / "prometheus", ignore_errors=True)
    for i in range(1, plan.workers + 1):
        (d / "prometheus" / f"agent-{i}").mkdir(parents=True)
    # A cluster file is written by its server once it accepts connections: readiness waits for it.
    for name in CLUSTERS:
        plan.cluster_file(name).unlink(missing_ok=True)
    if plan.s3:
        _write_private(plan.credentials_file, json.dumps({"accounts": {"@127.0.0.1": S3_FAKE_ACCOUNT}}, indent=2))
    _make_key(plan.encryption_key_file)
    (d / "redis.conf").write_text(render_redis_conf(plan))
    _write_private(d / "supervisord.conf", render_supervisord_conf(plan))
    (d / "env").write_text(render_env_file(plan, passthrough))
    (d / "fleet.json").write_text(json.dumps(plan.summary(), indent=2) + "\n")


# --- supervisord ---------------------------------------------------------------------------------------


class Supervisor:
    """supervisord's XML-RPC interface over its UNIX socket."""

    def __init__(self, socket_path: Path) -> None:
        from supervisor.xmlrpc import SupervisorTransport

        self.socket_path = socket_path
        transport = SupervisorTransport(None, None, f"unix://{socket_path}")
        self.proxy: Any = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def alive(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            return bool(self.proxy.supervisor.getState()["statename"] == "RUNNING")
        except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
            return False

    def processes(self) -> list[dict[str, Any]]:
        return list(self.proxy.supervisor.getAllProcessInfo())

    def pid(self) -> int:
        return int(self.proxy.supervisor.getPID())


def _exists(send: Callable[[int, int], None], ident: int) -> bool:
    """Whether a process (``os.kill``) or process group (``os.killpg``) exists; signal 0 sends nothing."""
    try:
        send(ident, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_alive(pid: int) -> bool:
    return _exists(os.kill, pid)


def _group_alive(pgid: int) -> bool:
    return _exists(os.killpg, pgid)


def _supervisord_pid(plan: Plan) -> int | None:
    """The pid in supervisord's pidfile, if that process is alive and is supervisord."""
    pidfile = plan.dir / "supervisord.pid"
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"supervisord" in cmdline and _pid_alive(pid) else None


def _wait(condition: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def start_supervisord(plan: Plan) -> Supervisor:
    env = {k: v for k, v in os.environ.items() if k not in FLEET_OWNED_ENV}
    conf = plan.dir / "supervisord.conf"
    proc = subprocess.run(
        [tool("supervisord"), "-c", str(conf)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    if proc.returncode != 0:
        raise FleetError(f"supervisord did not start: {(proc.stderr or proc.stdout).strip()}")
    sup = Supervisor(plan.socket_path)
    if not _wait(sup.alive, 15):
        raise FleetError(f"supervisord did not answer on {plan.socket_path}; see {plan.dir / 'logs'}")
    return sup


# --- readiness -------------------------------------------------------------------------------------------


def _http_ok(url: str, expect: str | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            body = resp.read().decode(errors="replace")
    except (OSError, urllib.error.URLError):
        return False
    return expect is None or body.strip() == expect


def _redis_ok(plan: Plan) -> bool:
    import redis

    client = redis.Redis(port=plan.redis_port, socket_connect_timeout=1, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _cluster_ok(plan: Plan, name: str) -> bool:
    cluster_file = plan.cluster_file(name)
    if not cluster_file.exists():
        return False
    argv = [tool("embedded-cluster"), "status", "-C", str(cluster_file)]
    try:
        return subprocess.run(argv, capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _s3_client(plan: Plan) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=plan.s3_endpoint,
        aws_access_key_id=S3_FAKE_ACCOUNT["api_key"],
        aws_secret_access_key=S3_FAKE_ACCOUNT["secret"],
        region_name=S3_REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=2),
    )


def _s3_ok(plan: Plan) -> bool:
    """The endpoint answers and the fleet's bucket exists (created here the first time)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = _s3_client(plan)
        names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if S3_BUCKET not in names:
            client.create_bucket(Bucket=S3_BUCKET)
    except (BotoCoreError, ClientError):
        return False
    return True


class _Pinger:
    """Celery control pings to the fleet's agents (one connection for all tries)."""

    def __init__(self, plan: Plan) -> None:
        from celery import Celery

        self.names = plan.agent_names
        self.app = Celery(broker=f"{plan.redis_url}/0", set_as_current=False)

    def __call__(self) -> bool:
        try:
            replies = self.app.control.ping(destination=self.names, timeout=1.0) or []
        except Exception:  # the broker is not up yet: kombu raises a variety of connection errors
            return False
        answered = {name for reply in replies for name in reply}
        return answered >= set(self.names)

    def close(self) -> None:
        self.app.close()


@contextlib.contextmanager
def _pinger(plan: Plan) -> Iterator[_Pinger]:
    pinger = _Pinger(plan)
    try:
        yield pinger
    finally:
        pinger.close()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text)


def wait_ready(plan: Plan, sup: Supervisor, timeout: float) -> None:
    """Wait until every component answers; fail early when supervisord gives a program up."""
    checks: dict[str, Callable[[], bool]] = {"redis": lambda: _redis_ok(plan)}
    if plan.s3:
        checks["s3"] = lambda: _s3_ok(plan)
    for name in CLUSTERS:
        checks[f"cluster-{name}"] = functools.partial(_cluster_ok, plan, name)
    checks["flower"] = lambda: _http_ok(f"{plan.flower_url}/healthcheck", "OK")
    deadline = time.monotonic() + timeout
    pending = dict(checks)
    with _pinger(plan) as ping:
        pending["agents"] = lambda: ping() and all(_http_ok(u) for u in plan.metrics_urls)
        while pending:
            for info in sup.processes():
                if info["statename"] in ("FATAL", "UNKNOWN"):  # supervisord gave up on it
                    log = plan.dir / "logs" / f"{info['name']}.log"
                    raise FleetError(f"{info['name']} is {info['statename']}; end of {log}:\n{_tail(log)}")
            for name, check in list(pending.items()):
                if check():
                    del pending[name]
            if pending and time.monotonic() > deadline:
                logs = "\n".join(f"  {plan.dir / 'logs' / n}.log" for n in pending if n != "agents")
                raise FleetError(f"not ready after {timeout:.0f} s: {', '.join(pending)}\n{logs}")
            if pending:
                time.sleep(0.3)


# --- commands --------------------------------------------------------------------------------------------


def print_summary(plan: Plan, heading: str) -> None:
    rows = [
        ("source cluster file", str(plan.cluster_file("source"))),
        ("dest cluster file", str(plan.cluster_file("dest"))),
        ("redis", plan.redis_url),
    ]
    if plan.s3:
        rows += [("blobstore", plan.blobstore_url), ("blob credentials", str(plan.credentials_file))]
    rows += [("encryption key", str(plan.encryption_key_file))]
    rows += [("flower", plan.flower_url), ("agents", " ".join(plan.agent_names))]
    rows += [("worker metrics", " ".join(plan.metrics_urls)), ("logs", str(plan.dir / "logs"))]
    rows += [("env", f". {shlex.quote(str(plan.dir / 'env'))}")]
    print(heading)
    for label, value in rows:
        print(f"  {label:<20} {value}")


def cmd_up(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    current = load_plan(run_dir)
    if current is not None:
        sup = Supervisor(current.socket_path)
        if sup.alive():
            with contextlib.suppress(xmlrpc.client.Fault):
                sup.proxy.supervisor.startAllProcesses(True)  # anything stopped by hand comes back
            wait_ready(current, sup, args.timeout)
            print_summary(current, f"fleet already running in {run_dir} (supervisord pid {sup.pid()})")
            if args.workers != current.workers or args.s3 != current.s3:
                print(f"  note: it runs {current.workers} agent(s), s3={current.s3}; `down` then `up` to change that")
            return 0
        stop(current)  # a supervisord that lost its socket, or leftovers of a crash
    for name in ("redis-server", "supervisord", "backup_agent", "embedded-cluster", "celery"):
        tool(name)
    if args.s3:
        tool("moto_server")
    plan = make_plan(
        run_dir, args.workers, args.concurrency, args.s3, args.stop_timeout, parse_cluster_knobs(args.cluster_knob)
    )
    passthrough = {k: v for k, v in os.environ.items() if k.startswith("FDBBR_") and k not in FLEET_OWNED_ENV}
    write_files(plan, passthrough)
    started = time.monotonic()
    sup = start_supervisord(plan)
    try:
        wait_ready(plan, sup, args.timeout)
    except (FleetError, KeyboardInterrupt):
        print(f"fleet up failed; stopping what started (logs stay in {run_dir / 'logs'})", file=sys.stderr)
        stop(plan)
        raise
    print_summary(plan, f"fleet up in {time.monotonic() - started:.1f} s: {run_dir} (supervisord pid {sup.pid()})")
    return 0


def stop(plan: Plan) -> bool:
    """Stop supervisord and everything it runs; kill what outlives it. False if nothing was running."""
    sup = Supervisor(plan.socket_path)
    pid = _supervisord_pid(plan)
    groups: list[int] = []
    if sup.alive():
        groups = [int(p["pid"]) for p in sup.processes() if p["pid"]]
        pid = sup.pid()
        with contextlib.suppress(OSError, xmlrpc.client.Fault):
            sup.proxy.supervisor.shutdown()
    elif pid is not None:
        os.kill(pid, signal.SIGTERM)  # supervisord without its socket: still ours (the pidfile says so)
    else:
        return False
    # supervisord stops its programs one by one, each within stopwaitsecs.
    if not _wait(lambda: not _pid_alive(pid), plan.stop_timeout * plan.program_count + 30):
        os.kill(pid, signal.SIGKILL)
    for pgid in groups:
        if _group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
    _wait(lambda: not any(_group_alive(g) for g in groups), 10)
    plan.socket_path.unlink(missing_ok=True)
    return True


def cmd_down(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir).resolve()
    plan = load_plan(run_dir)
    if plan is not None and stop(plan):
        print(f"fleet stopped: {run_dir}")
    else:
        print(f"fleet is not running: {run_dir}")
    if args.wipe and run_dir.is_dir():
        for name in OWNED_PATHS:
            path = run_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            run_dir.rmdir()  # only when nothing else is in it
        print(f"wiped the fleet's data in {run_dir}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir).resolve()
    plan = load_plan(run_dir)
    sup = Supervisor(plan.socket_path) if plan else None
    if plan is None or sup is None or not sup.alive():
        if args.json:
            print(json.dumps({"running": False, "run_dir": str(run_dir)}))
        else:
            print(f"fleet is not running: {run_dir}")
        return NOT_RUNNING
    procs = sup.processes()
    healthy = all(p["statename"] == "RUNNING" for p in procs)
    if args.json:
        doc = {"running": True, "healthy": healthy, **plan.summary()}
        doc["processes"] = [{k: p[k] for k in ("name", "group", "statename", "pid")} for p in procs]
        print(json.dumps(doc, indent=2))
    else:
        print_summary(plan, f"fleet in {run_dir} (supervisord pid {sup.pid()})")
        print("  processes:")
        for p in procs:
            print(f"    {p['name']:<16} {p['statename']:<9} {p['description']}")
    return 0 if healthy else 1


def cmd_logs(args: argparse.Namespace) -> int:
    logs = Path(args.run_dir).resolve() / "logs"
    names = args.programs or sorted(p.stem for p in logs.glob("*.log"))
    files = [str(logs / f"{n}.log") for n in names]
    missing = [f for f in files if not Path(f).exists()]
    if not files or missing:
        known = ", ".join(sorted(p.stem for p in logs.glob("*.log"))) or "none yet"
        raise FleetError(f"no log {', '.join(missing) or 'files'} (known: {known})")
    argv = ["tail", "-n", str(args.lines), *(["-F"] if args.follow else []), *files]
    os.execvp("tail", argv)


def parser() -> argparse.ArgumentParser:
    default_run_dir = os.environ.get("FLEET_RUN_DIR") or str(DEFAULT_RUN_DIR)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--run-dir", default=default_run_dir, help="state, data and logs (default: %(default)s)")
    p = argparse.ArgumentParser(prog="fleet", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", parents=[common], help="start the fleet and wait until it is ready")
    up.add_argument("--workers", type=int, default=2, help="backup agents (default: %(default)s)")
    up.add_argument("--concurrency", type=int, default=2, help="pool processes per agent (default: %(default)s)")
    up.add_argument("--s3", action="store_true", help="also run an S3 endpoint (moto) and print a blobstore URL")
    up.add_argument("--timeout", type=float, default=120, help="seconds to wait for readiness (default: %(default)s)")
    up.add_argument(
        "--stop-timeout", type=int, default=30, help="seconds a program may take to stop (default: %(default)s)"
    )
    up.add_argument(
        "--cluster-knob",
        action="append",
        default=[],
        metavar="CLUSTER:NAME=VALUE",
        help="extra server knob for source or dest, e.g. source:max_read_transaction_life_versions=60000000",
    )
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", parents=[common], help="stop everything (safe when already stopped)")
    down.add_argument("--wipe", action="store_true", help="also delete data directories, logs and state")
    down.set_defaults(func=cmd_down)
    status = sub.add_parser("status", parents=[common], help="programs and URLs; exit 3 when not running")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    logs = sub.add_parser("logs", parents=[common], help="tail program logs (redis, cluster-source, agent-1, ...)")
    logs.add_argument("programs", nargs="*")
    logs.add_argument("-n", "--lines", type=int, default=50)
    logs.add_argument("-f", "--follow", action="store_true")
    logs.set_defaults(func=cmd_logs)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "workers", 1) < 1:
        print("fleet: --workers must be at least 1", file=sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except FleetError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
