"""The deployment files (systemd, Docker, compose, Kubernetes, the local fleet's generated configs) agree
with the code: executables, options, queues, settings, Redis durability, grace periods, references.

Docker and Kubernetes do not run here, so these files are checked, not run; the local fleet also
runs for real in ``test_local_fleet.py``. The checkers live in ``checks.py``; the last tests here
feed them broken inputs to show they catch what they claim to.
"""

from __future__ import annotations

import configparser
import json
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.app import QUEUES
from tests.deploy import checks
from tests.deploy.checks import DEPLOY, FLEET_IMAGE, SCRIPTS, VERSION

SYSTEMD = DEPLOY / "systemd"
DOCKER = DEPLOY / "docker"
K8S = DEPLOY / "k8s"
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
UNITS = sorted(p for p in SYSTEMD.iterdir() if p.suffix in (".service", ".target"))


def _text_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


# --- every file -------------------------------------------------------------------------------------


def test_the_deploy_tree_is_complete() -> None:
    for path in [
        DEPLOY / "README.md",
        DEPLOY / "local" / "fleet",
        DEPLOY / "local" / "fleet.py",
        SYSTEMD / "fdbbackup-agent@.service",
        SYSTEMD / "fdbbr-flower.service",
        SYSTEMD / "fdbbr-embedded-cluster@.service",
        SYSTEMD / "fleet.env.sample",
        DOCKER / "Dockerfile",
        DOCKER / "docker-compose.yml",
        K8S / "kustomization.yaml",
    ]:
        assert path.is_file(), path
    assert (DEPLOY / "local" / "fleet").stat().st_mode & 0o111, "deploy/local/fleet must be executable"


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs)


def test_every_fdbbr_variable_named_in_deploy_is_a_setting() -> None:
    problems = []
    seen = set()
    for path in _text_files():
        names = checks.env_names_in(path.read_text(errors="replace"))
        seen |= names
        problems += checks.unknown_env_vars(names, str(path.relative_to(DEPLOY)))
    assert problems == []
    assert {"FDBBR_REDIS_URL", "FDBBR_TASK_TIME_LIMIT"} <= seen


def test_settings_names_are_read_from_the_code() -> None:
    known = checks.known_env_vars()
    assert {"FDBBR_REDIS_URL", "FDBBR_TASK_TIME_LIMIT", "FDBBR_BROKER_URL", "FDBBR_METRICS_PORT"} <= known
    extended = checks.SETTINGS_PY.read_text() + '\n\ndef _more() -> str:\n    return _env("BRAND_NEW", "")\n'
    assert "FDBBR_BRAND_NEW" in checks.known_env_vars(extended)


# --- systemd ----------------------------------------------------------------------------------------


def _env_assignments(values: list[str], instance: str) -> dict[str, str]:
    env = {}
    for value in values:
        for word in shlex.split(value):
            key, _, val = word.partition("=")
            env[key] = checks.systemd_specifiers(val, instance)
    return env


def _instances(unit_path: Path, env_files: list[str]) -> list[str]:
    """Instances of a template unit named by its sample env files (``cluster-%i.env`` -> ``cluster-dest``)."""
    if not unit_path.name.endswith("@.service"):
        return [""]
    found = set()
    for f in env_files:
        name = Path(f.lstrip("-")).name
        if "%i" in name:
            before, after = name.split("%i", 1)
            for sample in SYSTEMD.glob(f"{before}*{after}.sample"):
                found.add(sample.name[len(before) : len(sample.name) - len(after) - len(".sample")])
    assert found, f"{unit_path.name}: a template unit needs a sample env file naming an instance"
    return sorted(found)


def systemd_scenarios() -> Iterator[tuple[str, dict[str, list[tuple[str, str]]], dict[str, str], list[str]]]:
    """(where, unit, environment, argv) for each unit, instance, and with/without optional env files."""
    for path in UNITS:
        unit = checks.read_unit(path)
        exec_start = checks.unit_values(unit, "Service", "ExecStart")
        if not exec_start:
            continue
        env_files = checks.unit_values(unit, "Service", "EnvironmentFile")
        for instance in _instances(path, env_files):
            for with_optional in (False, True):
                env = _env_assignments(checks.unit_values(unit, "Service", "Environment"), instance)
                for ref in env_files:
                    optional = ref.startswith("-")
                    sample = SYSTEMD / (Path(checks.systemd_specifiers(ref.lstrip("-"), instance)).name + ".sample")
                    assert optional or sample.is_file(), f"{path.name}: {ref} has no sample {sample.name}"
                    if sample.is_file() and (with_optional or not optional):
                        env.update(checks.read_env_file(sample))
                argv = checks.systemd_exec(checks.systemd_specifiers(exec_start[-1], instance), env)
                where = f"{path.name}[{instance}]{' with optional env files' if with_optional else ''}"
                yield where, unit, env, argv


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_systemd_unit_parses(path: Path) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(path.read_text(), source=str(path))
    assert "Unit" in parser and "Install" in parser
    unit = checks.read_unit(path)
    if path.suffix == ".service":
        service = dict(unit["Service"])
        assert service.get("User") and service["User"] not in ("root", "0"), f"{path.name}: run as a service user"
        assert service.get("Restart") == "on-failure"
        assert service.get("NoNewPrivileges") == "yes" and service.get("ProtectSystem") == "strict"


def test_systemd_units_run_existing_executables_with_valid_options() -> None:
    problems, bins = [], set()
    for where, _unit, env, argv in systemd_scenarios():
        assert argv[0].startswith("/"), f"{where}: ExecStart needs an absolute path"
        bins.add(str(Path(argv[0]).parent))
        problems += checks.check_argv(argv, where)[0]
        problems += checks.settings_problems(env, where)
    assert problems == []
    assert len(bins) == 1, f"every unit should use one installation: {bins}"


def test_systemd_agents_get_a_warm_shutdown_and_consume_every_queue() -> None:
    consumed, problems, agents = [], [], 0
    for where, unit, env, argv in systemd_scenarios():
        _, queues = checks.check_argv(argv, where)
        if queues is None:
            continue
        agents += 1
        service = dict(unit["Service"])
        # SIGTERM to Celery's main process only; SIGKILL to the rest after the timeout.
        assert service.get("KillMode") == "mixed", where
        assert service.get("KillSignal", "SIGTERM") == "SIGTERM", where
        problems += checks.grace_problems(checks.duration_seconds(service["TimeoutStopSec"]), env, where)
        if "optional" not in where:
            consumed.append(queues)
        assert env.get("PROMETHEUS_MULTIPROC_DIR", "").startswith("/run/"), f"{where}: metrics dir not per run"
        assert service.get("RuntimeDirectory"), f"{where}: the metrics dir must be created empty at start"
    assert agents and problems == []
    assert checks.uncovered_queues(consumed, "systemd agents (defaults)") == []


def test_systemd_analyze_verify_accepts_every_unit(tmp_path: Path) -> None:
    """systemd's own parser: unknown directives and bad values are warnings, so any output fails."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    bin_dir = str(Path(sys.executable).parent)  # where the console scripts really are, here
    files = []
    for path in UNITS:
        text = path.read_text().replace("/opt/fdbbr/venv/bin", bin_dir)
        names = [path.name]
        if path.name.endswith("@.service"):
            env_files = checks.unit_values(checks.read_unit(path), "Service", "EnvironmentFile")
            names = [path.name.replace("@.", f"@{i}.") for i in _instances(path, env_files)]
        for name in names:
            (tmp_path / name).write_text(text)
            files.append(name)
    proc = subprocess.run(
        [tool, "verify", "--man=no", *files], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), proc.stdout + proc.stderr


# --- Docker -----------------------------------------------------------------------------------------


def _dockerfile() -> tuple[list[tuple[str, str]], list[str], list[str]]:
    instructions = checks.dockerfile_instructions(DOCKER / "Dockerfile")
    entrypoint = [checks.exec_form(a, "ENTRYPOINT") for i, a in instructions if i == "ENTRYPOINT"]
    cmd = [checks.exec_form(a, "CMD") for i, a in instructions if i == "CMD"]
    assert entrypoint, "the Dockerfile needs an ENTRYPOINT"
    return instructions, entrypoint[-1], cmd[-1] if cmd else []


def test_dockerfile_builds_the_fleet_image() -> None:
    instructions, entrypoint, cmd = _dockerfile()
    froms = [a.split()[0] for i, a in instructions if i == "FROM"]
    assert froms and all(f == "python:3.11-slim" for f in froms)
    assert entrypoint[0] in SCRIPTS, f"ENTRYPOINT {entrypoint} is not a console script of pyproject.toml"
    problems, queues = checks.check_argv([*entrypoint, *cmd], "Dockerfile ENTRYPOINT+CMD")
    assert problems == [] and queues == list(QUEUES)
    users = [a for i, a in instructions if i == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must run as a non-root user"
    assert ("STOPSIGNAL", "SIGTERM") in instructions
    installs = [a for i, a in instructions if i == "RUN" and "pip install" in a]
    assert installs and not any("[dev]" in a or "-e " in a for a in installs), "no dev extras, no editable install"
    env = " ".join(a for i, a in instructions if i == "ENV")
    assert checks.unknown_env_vars(checks.env_names_in(env), "Dockerfile ENV") == []


def test_dockerfile_copies_every_package_of_the_wheel() -> None:
    instructions, _, _ = _dockerfile()
    packages = set(checks.PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
    copies = [a.split()[:-1] for i, a in instructions if i == "COPY" and not a.startswith("--from")]
    copied = {src.rstrip("/") for sources in copies for src in sources}
    assert packages <= copied, f"the image lacks {packages - copied}"
    assert {"pyproject.toml", "README.md"} <= copied
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    assert all(f"!{p}/**" in ignore for p in packages), "Dockerfile.dockerignore must let every package through"


def _compose() -> dict[str, Any]:
    doc = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    assert isinstance(doc, dict)
    return doc


def _fleet_image(image: str, where: str) -> bool:
    if not image.startswith(FLEET_IMAGE + ":"):
        return False
    assert image == f"{FLEET_IMAGE}:{VERSION}", f"{where}: {image} is not the project's version {VERSION}"
    return True


def test_compose_services_run_the_project_entry_points() -> None:
    _, entrypoint, cmd = _dockerfile()
    doc = _compose()
    problems, consumed, fleet = [], [], 0
    for name, svc in doc["services"].items():
        where = f"docker-compose.yml service {name}"
        if not _fleet_image(str(svc.get("image", "")), where):
            continue
        fleet += 1
        build = svc.get("build") or {}
        assert (DOCKER / build.get("context", "/nonexistent") / build.get("dockerfile", "")).resolve() == (
            DOCKER / "Dockerfile"
        ), f"{where}: must build deploy/docker/Dockerfile (context: the repository)"
        argv = checks.image_argv(svc, entrypoint, cmd, ("entrypoint", "command"))
        found, queues = checks.check_argv(argv, where)
        env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
        problems += found + checks.settings_problems(env, where)
        assert "FDBBR_REDIS_URL" in env, f"{where}: which Redis?"
        if queues is not None:
            consumed.append(queues)
            problems += checks.grace_problems(checks.duration_seconds(svc["stop_grace_period"]), env, where)
            assert svc.get("stop_signal", "SIGTERM") == "SIGTERM"
            targets = {v["target"] if isinstance(v, dict) else v.split(":")[1] for v in svc.get("volumes", [])}
            assert env["FDB_CLUSTER_FILE"] in targets, f"{where}: the cluster file is not mounted"
            secrets = {f"/run/secrets/{s}" for s in svc.get("secrets", [])}
            assert env["FDB_BLOB_CREDENTIALS"] in secrets, f"{where}: blob credentials must come from a secret"
            assert set(svc["secrets"]) <= set(doc["secrets"])
            assert env.get("PROMETHEUS_MULTIPROC_DIR"), f"{where}: pool metrics need a multiprocess dir"
    assert fleet >= 2 and problems == []
    assert checks.uncovered_queues(consumed, "docker-compose.yml") == []


def test_compose_redis_is_durable_and_never_evicts() -> None:
    redis = _compose()["services"]["redis"]
    command = redis["command"]
    assert command[0] == "redis-server"
    assert checks.redis_problems(checks.redis_args(command[1:]), "docker-compose.yml redis") == []
    assert any(str(v).endswith(":/data") for v in redis["volumes"]), "the AOF must live on a volume"


def test_compose_agents_get_the_encryption_key_as_a_secret() -> None:
    """Encrypted backups name /run/secrets/encryption-key; unset, the secret is empty (plain backups only)."""
    doc = _compose()
    assert "encryption-key" in doc["services"]["worker"]["secrets"]
    assert doc["secrets"]["encryption-key"]["file"] == "${ENCRYPTION_KEY_FILE:-/dev/null}"


def test_compose_sample_credentials_hold_no_secret() -> None:
    doc = json.loads((DOCKER / "blob-credentials.sample.json").read_text())
    for account, fields in doc["accounts"].items():
        assert "REPLACE" in account and all("REPLACE" in v for v in fields.values())


# --- Kubernetes -------------------------------------------------------------------------------------


def _k8s_docs() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = []
    for resource in kustomization["resources"]:
        path = K8S / resource
        assert path.is_file(), f"kustomization.yaml lists a missing {resource}"
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert "secret.template.yaml" not in kustomization["resources"], "a template must not be applied"
    return docs


def _by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _secret_template() -> dict[str, Any]:
    doc = yaml.safe_load((K8S / "secret.template.yaml").read_text())
    assert isinstance(doc, dict) and doc["kind"] == "Secret"
    return doc


def _pod_env(container: dict[str, Any], configmaps: dict[str, dict[str, Any]], where: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for ref in container.get("envFrom", []):
        name = ref["configMapRef"]["name"]
        assert name in configmaps, f"{where}: ConfigMap {name} is not defined"
        env.update({k: str(v) for k, v in configmaps[name]["data"].items()})
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif "secretKeyRef" in var["valueFrom"]:
            assert var["valueFrom"]["secretKeyRef"].get("optional"), f"{where}: {var['name']} needs an optional ref"
    return env


def _workloads(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            for c in doc["spec"]["template"]["spec"]["containers"]:
                yield f"{doc['kind']} {doc['metadata']['name']} container {c['name']}", doc, c


def test_k8s_containers_run_the_project_entry_points() -> None:
    _, entrypoint, cmd = _dockerfile()
    docs = _k8s_docs()
    configmaps = _by_kind(docs, "ConfigMap")
    problems, consumed, fleet = [], [], 0
    for where, workload, c in _workloads(docs):
        assert c.get("resources", {}).get("requests") and c["resources"].get("limits"), f"{where}: resources"
        assert c.get("securityContext", {}).get("allowPrivilegeEscalation") is False, where
        if not _fleet_image(c["image"], where):
            continue
        fleet += 1
        argv = checks.image_argv(c, entrypoint, cmd, ("command", "args"))
        found, queues = checks.check_argv(argv, where)
        env = _pod_env(c, configmaps, where)
        problems += found + checks.settings_problems(env, where)
        if queues is not None:
            consumed.append(queues)
            grace = workload["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            problems += checks.grace_problems(grace, env, where)
            assert env.get("PROMETHEUS_MULTIPROC_DIR"), f"{where}: pool metrics need a multiprocess dir"
    assert fleet >= 2 and problems == []
    assert checks.uncovered_queues(consumed, "k8s") == []


def test_k8s_agents_mount_the_cluster_file_and_the_blob_credentials() -> None:
    docs = _k8s_docs()
    configmaps = _by_kind(docs, "ConfigMap")
    secret = _secret_template()
    agent = _by_kind(docs, "Deployment")["fdbbr-agent"]
    pod = agent["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = _pod_env(container, configmaps, "fdbbr-agent")
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}

    cluster_dir, cluster_key = env["FDB_CLUSTER_FILE"].rsplit("/", 1)
    source = mounts[cluster_dir]["configMap"]["name"]
    assert cluster_key in configmaps[source]["data"], "the cluster file is not in its ConfigMap"

    creds_dir, creds_key = env["FDB_BLOB_CREDENTIALS"].rsplit("/", 1)
    assert mounts[creds_dir]["secret"]["secretName"] == secret["metadata"]["name"]
    assert creds_key in secret["stringData"]
    assert not any(k.startswith("FDB_BLOB") for k in configmaps[source]["data"]), "credentials stay in the Secret"


def test_k8s_agents_mount_the_encryption_key_secret_when_it_exists() -> None:
    pod = _by_kind(_k8s_docs(), "Deployment")["fdbbr-agent"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in pod["containers"][0]["volumeMounts"]}
    key = mounts["/etc/fdbbr/encryption"]["secret"]
    assert key["secretName"] == "fdbbr-encryption-key" and key["optional"] is True
    assert "create secret generic fdbbr-encryption-key" in (K8S / "secret.template.yaml").read_text()


def test_kubectl_kustomize_builds_the_manifests() -> None:
    tool = shutil.which("kubectl")
    if tool is None:
        pytest.skip("kubectl is not installed")
    proc = subprocess.run([tool, "kustomize", str(K8S)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    built = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert len(built) == len(_k8s_docs())
    assert all(d["metadata"].get("namespace") == "fdbbr" for d in built if d["kind"] != "Namespace")


def test_k8s_secret_template_holds_no_secret() -> None:
    secret = _secret_template()
    assert "data" not in secret, "base64 data would hide a real secret; use stringData placeholders"
    for value in secret["stringData"].values():
        accounts = json.loads(value)["accounts"]
        for account, fields in accounts.items():
            assert "REPLACE" in account and all("REPLACE" in v for v in fields.values())


def test_k8s_redis_is_a_durable_statefulset_that_never_evicts() -> None:
    docs = _k8s_docs()
    redis = _by_kind(docs, "StatefulSet")["fdbbr-redis"]
    container = redis["spec"]["template"]["spec"]["containers"][0]
    directives = checks.redis_args(container["args"])
    assert container["command"] == ["redis-server"]
    assert checks.redis_problems(directives, "k8s redis") == []
    claims = {t["metadata"]["name"] for t in redis["spec"]["volumeClaimTemplates"]}
    data_mounts = {m["mountPath"] for m in container["volumeMounts"] if m["name"] in claims}
    assert directives["dir"] in data_mounts, "the AOF must live on the PersistentVolumeClaim"
    host = _by_kind(docs, "ConfigMap")["fdbbr-config"]["data"]["FDBBR_REDIS_URL"].split("//")[1].split(":")[0]
    service = _by_kind(docs, "Service")[host]
    assert service["spec"]["selector"].items() <= redis["spec"]["template"]["metadata"]["labels"].items()
    assert redis["spec"]["serviceName"] == host


def test_k8s_flower_has_a_service_and_health_probes() -> None:
    docs = _k8s_docs()
    flower = _by_kind(docs, "Deployment")["fdbbr-flower"]
    service = _by_kind(docs, "Service")["fdbbr-flower"]
    assert service["spec"]["selector"].items() <= flower["spec"]["template"]["metadata"]["labels"].items()
    container = flower["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthcheck"
    assert "PROMETHEUS_MULTIPROC_DIR" not in _pod_env(container, _by_kind(docs, "ConfigMap"), "flower")


# --- the local fleet's generated configuration ------------------------------------------------------


@pytest.fixture(scope="module")
def fleet_module() -> Any:
    return checks.load_fleet_module()


def _local_plan(fleet_module: Any, tmp_path: Path, s3: bool) -> Any:
    return fleet_module.Plan(
        run_dir=str(tmp_path),
        workers=2,
        concurrency=2,
        s3=s3,
        redis_port=16379,
        flower_port=15555,
        s3_port=15000 if s3 else 0,
        cluster_ports={"source": 14600, "dest": 14601},
        metrics_ports=[19101, 19102],
    )


def _supervisord_programs(text: str) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return {s.split(":", 1)[1]: dict(parser[s]) for s in parser.sections() if s.startswith("program:")}


def _supervisord_env(value: str) -> dict[str, str]:
    return dict(w.split("=", 1) for w in shlex.split(value.replace("%%", "%").replace(",", " ")))


def test_local_fleet_config_runs_the_project_entry_points(fleet_module: Any, tmp_path: Path) -> None:
    plan = _local_plan(fleet_module, tmp_path, s3=True)
    text = fleet_module.render_supervisord_conf(plan)
    programs = _supervisord_programs(text)
    assert {"redis", "s3", "cluster-source", "cluster-dest", "agent-1", "agent-2", "flower"} == set(programs)
    problems, consumed = [], []
    for name, prog in programs.items():
        argv = shlex.split(prog["command"].replace("%%", "%"))
        env = _supervisord_env(prog.get("environment", ""))
        if name in ("redis", "s3"):
            assert Path(argv[0]).name in ("redis-server", "moto_server")
            continue
        found, queues = checks.check_argv(argv, f"local fleet {name}")
        problems += found + checks.settings_problems(env, f"local fleet {name}")
        if queues is not None:
            consumed.append(queues)
            assert env["FDBBR_REDIS_URL"] == plan.redis_url and env["PROMETHEUS_MULTIPROC_DIR"]
        if name == "cluster-dest":  # BulkLoad needs both knobs on the destination
            assert "--knob_shard_encode_location_metadata=1" in argv and "--knob_enable_read_lock_on_range=1" in argv
    assert problems == []
    assert checks.uncovered_queues(consumed, "local fleet") == []
    secret = fleet_module.S3_FAKE_ACCOUNT["secret"]
    assert secret not in text and secret not in fleet_module.render_env_file(plan, {})


def test_local_fleet_redis_is_durable_and_never_evicts(fleet_module: Any, tmp_path: Path) -> None:
    directives = checks.redis_conf(fleet_module.render_redis_conf(_local_plan(fleet_module, tmp_path, s3=False)))
    assert checks.redis_problems(directives, "local fleet redis.conf") == []
    assert directives["dir"] == str(tmp_path / "redis")


# --- the checkers catch what they claim to ----------------------------------------------------------


def test_checker_flags_unknown_queues_and_uncovered_ones() -> None:
    problems, queues = checks.check_argv(["backup_agent", "--queues", "backup,bogus"], "t")
    assert queues == ["backup", "bogus"] and len(problems) == 1 and "'bogus'" in problems[0]
    assert checks.check_argv(["celery", "-A", "tasks", "worker", "-Q", "nope"], "t")[0]
    assert checks.uncovered_queues([["backup", "restore"]], "t")
    assert checks.uncovered_queues([list(QUEUES)], "t") == []


def test_checker_flags_unknown_settings_and_bad_values() -> None:
    assert checks.unknown_env_vars({"FDBBR_NOT_A_SETTING"}, "t")
    assert checks.settings_problems({"FDBBR_TASK_TIME_LIMIT": "1h"}, "t")  # not an integer
    assert checks.settings_problems({"FDBBR_VISIBILITY_TIMEOUT": "60"}, "t")  # below the task limit
    assert checks.settings_problems({"FDBBR_REDIS_URL": "redis://r:6379"}, "t") == []
    assert checks.env_names_in("FDBBR_* and FDBBR_X_Y, not FDBBR_") == {"FDBBR_X_Y"}


def test_checker_flags_unknown_executables_and_options() -> None:
    assert checks.check_argv(["/usr/bin/fdbbackup-agent"], "t")[0]
    assert checks.check_argv(["backup_agent", "--concurency", "2"], "t")[0]
    assert checks.check_argv(["celery", "worker"], "t")[0]  # not the project's app
    assert checks.check_argv(["celery", "-A", "tasks", "flower", "--adress=0.0.0.0"], "t")[0]
    serve = ["embedded-cluster", "serve", "--data-dir", "d", "--cluster-file", "f"]
    assert checks.check_argv([*serve, "--knob_no_such_knob=1"], "t")[0]
    assert checks.check_argv([*serve, "--knob_shard_count=8"], "t") == ([], None)


def test_checker_flags_short_grace_periods_and_evicting_redis() -> None:
    assert checks.grace_problems(3600, {}, "t")  # equal to the default limit is not enough
    assert checks.grace_problems(100, {"FDBBR_TASK_TIME_LIMIT": "50"}, "t") == []
    assert checks.grace_problems(checks.duration_seconds("1h 5min"), {}, "t") == []
    assert checks.duration_seconds("3900s") == checks.duration_seconds("65min") == 3900
    assert checks.redis_problems({"appendonly": "yes", "maxmemory-policy": "allkeys-lru"}, "t")
    assert checks.redis_problems(checks.redis_args(["--maxmemory-policy", "noeviction"]), "t")


def test_systemd_exec_expands_like_systemd() -> None:
    env = {"ARGS": "--port 1 --knob_x=2", "Q": "a,b"}
    assert checks.systemd_exec("-/bin/x $ARGS --queues ${Q} --p=${Q}", env) == [
        "/bin/x",
        "--port",
        "1",
        "--knob_x=2",
        "--queues",
        "a,b",
        "--p=a,b",
    ]
