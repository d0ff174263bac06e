"""Checkers for the deployment files: each returns a list of problems (empty when all is well).

What "well" means is read from the code, never from a list kept here: environment variables from
``config/settings.py`` (every name it reads with ``ENV_PREFIX``), queues from ``tasks.app.QUEUES``,
executables from ``pyproject.toml``'s ``[project.scripts]``, options from the click commands and
Flower's option table, the task time limit from :func:`config.get_settings` under each deployment's
own environment.
"""

from __future__ import annotations

import ast
import configparser
import json
import os
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from config import settings as settings_module
from tasks.app import QUEUES

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SETTINGS_PY = REPO / "config" / "settings.py"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SCRIPTS = frozenset(PYPROJECT["project"]["scripts"])
VERSION: str = PYPROJECT["project"]["version"]
FLEET_IMAGE = "fdbbr-fleet"
ENV_PREFIX = settings_module.ENV_PREFIX
ENV_NAME = re.compile(re.escape(ENV_PREFIX) + r"[A-Z0-9_]*[A-Z0-9]")


# --- environment variables --------------------------------------------------------------------------


def known_env_vars(source: str | None = None) -> frozenset[str]:
    """Every ``FDBBR_*`` name ``config/settings.py`` reads: ``ENV_PREFIX + "NAME"`` anywhere, and calls
    with a literal first argument to the module's helpers that read ``ENV_PREFIX + <their first parameter>``."""
    tree = ast.parse(source if source is not None else SETTINGS_PY.read_text())

    def prefixed(node: ast.AST) -> ast.expr | None:
        if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add)):
            return None
        left = node.left
        return node.right if isinstance(left, ast.Name) and left.id == "ENV_PREFIX" else None

    readers = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef) and fn.args.args:
            first = fn.args.args[0].arg
            for node in ast.walk(fn):
                right = prefixed(node)
                if isinstance(right, ast.Name) and right.id == first:
                    readers.add(fn.name)
    names = set()
    for node in ast.walk(tree):
        right = prefixed(node)
        if isinstance(right, ast.Constant) and isinstance(right.value, str):
            names.add(right.value)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in readers and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
    return frozenset(ENV_PREFIX + n for n in names)


def env_names_in(text: str) -> set[str]:
    """Every ``FDBBR_NAME`` spelled in a text (a file, a command, a manifest)."""
    return set(ENV_NAME.findall(text))


def unknown_env_vars(names: set[str] | Sequence[str], where: str) -> list[str]:
    known = known_env_vars()
    return [f"{where}: {n} is not a setting in config/settings.py" for n in sorted(set(names) - known)]


@contextmanager
def _environ(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
            del os.environ[key]
        os.environ.update({k: v for k, v in env.items() if k.startswith(ENV_PREFIX)})
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def effective_settings(env: Mapping[str, str]) -> settings_module.Settings:
    """The settings a process would run with, given a deployment's environment (FDBBR_* only)."""
    with _environ(env):
        return settings_module.get_settings.__wrapped__()


def settings_problems(env: Mapping[str, str], where: str) -> list[str]:
    """Unknown names, values the settings cannot parse, and a visibility timeout below the task limit."""
    problems = unknown_env_vars([k for k in env if k.startswith(ENV_PREFIX)], where)
    try:
        s = effective_settings(env)
    except ValueError as exc:
        return [*problems, f"{where}: {exc}"]
    if s.visibility_timeout <= s.task_time_limit:
        problems.append(
            f"{where}: visibility timeout {s.visibility_timeout} s must exceed the task time limit "
            f"{s.task_time_limit} s (else a running task is delivered twice)"
        )
    return problems


def grace_problems(grace_seconds: float, env: Mapping[str, str], where: str) -> list[str]:
    """A stop grace period must exceed the task time limit, or a warm shutdown kills running tasks."""
    limit = effective_settings(env).task_time_limit
    if grace_seconds <= limit:
        return [f"{where}: stop grace {grace_seconds:g} s does not exceed the task time limit {limit} s"]
    return []


# --- queues -----------------------------------------------------------------------------------------


def unknown_queues(queues: Sequence[str], where: str) -> list[str]:
    return [f"{where}: unknown queue {q!r} (tasks.app.QUEUES: {', '.join(QUEUES)})" for q in queues if q not in QUEUES]


def uncovered_queues(consumed: Sequence[Sequence[str]], where: str) -> list[str]:
    """Every queue needs a consumer, or its tasks wait forever."""
    missing = set(QUEUES) - {q for qs in consumed for q in qs}
    return [f"{where}: no worker consumes queue {q!r}" for q in sorted(missing)]


# --- commands ---------------------------------------------------------------------------------------


def _flower_option_names() -> set[str]:
    import flower.options  # noqa: F401  (defines Flower's options on tornado's global parser)
    from tornado.options import options

    return {name.replace("-", "_") for name in options._options}


def check_argv(argv: Sequence[str], where: str) -> tuple[list[str], list[str] | None]:
    """Validate a fleet command line; return (problems, queues it consumes or None if not a worker).

    Accepted: a console script of pyproject.toml (backup_agent and ``embedded-cluster serve`` are parsed
    with their own click commands, so a misspelt option fails) and ``celery -A tasks worker|flower``.
    """
    if not argv:
        return [f"{where}: empty command"], None
    exe = os.path.basename(argv[0])
    args = list(argv[1:])
    if exe == "backup_agent":
        from cli.backup_agent import cli
        from cli.common import normalize_argv

        try:
            ctx = cli.make_context("backup_agent", normalize_argv(args))
        except click.ClickException as exc:
            return [f"{where}: backup_agent {shlex.join(args)}: {exc.format_message()}"], None
        queues = str(ctx.params["queues"]).split(",")
        return unknown_queues(queues, where), queues
    if exe == "embedded-cluster":
        return _check_embedded_cluster(args, where), None
    if exe in SCRIPTS:
        return [], None
    if exe == "celery":
        return _check_celery(args, where)
    scripts = ", ".join(sorted(SCRIPTS))
    return [f"{where}: {exe!r} is neither a console script of pyproject.toml ({scripts}) nor celery"], None


def _check_embedded_cluster(args: list[str], where: str) -> list[str]:
    from cli.embedded_cluster import serve
    from embedded_cluster.knobs import Knobs, parse_knob_args
    from fdbcore import errors

    if not args or args[0] != "serve":
        return [f"{where}: embedded-cluster runs as a service with `serve`, not {args[:1]}"]
    try:
        ctx = serve.make_context("serve", args[1:])
        Knobs.from_strings(parse_knob_args(ctx.args))
    except click.ClickException as exc:
        return [f"{where}: embedded-cluster serve: {exc.format_message()}"]
    except errors.FDBError as exc:
        return [f"{where}: embedded-cluster serve: {exc}"]
    return []


def _check_celery(args: list[str], where: str) -> tuple[list[str], list[str] | None]:
    if args[:2] != ["-A", "tasks"] and args[:1] != ["--app=tasks"]:
        return [f"{where}: celery must run the project's app: `celery -A tasks ...`, not {shlex.join(args)}"], None
    rest = args[2:] if args[0] == "-A" else args[1:]
    command, options = (rest[0], rest[1:]) if rest else ("", [])
    if command == "flower":
        known = _flower_option_names()
        bad = [o for o in options if o.startswith("--") and o[2:].split("=", 1)[0].replace("-", "_") not in known]
        return [f"{where}: Flower has no option {o.split('=', 1)[0]}" for o in bad], None
    if command == "worker":
        queues: list[str] = list(QUEUES)
        for i, opt in enumerate(options):
            if opt in ("-Q", "--queues") and i + 1 < len(options):
                queues = options[i + 1].split(",")
            elif opt.startswith("--queues="):
                queues = opt.split("=", 1)[1].split(",")
        return unknown_queues(queues, where), queues
    return [f"{where}: celery {command!r}: the fleet runs only `worker` and `flower`"], None


# --- Redis ------------------------------------------------------------------------------------------


def redis_problems(directives: Mapping[str, str], where: str) -> list[str]:
    """Celery's keys must never be evicted and must survive a restart."""
    problems = []
    if directives.get("maxmemory-policy") != "noeviction":
        problems.append(f"{where}: Redis needs maxmemory-policy noeviction (got {directives.get('maxmemory-policy')})")
    if directives.get("appendonly") != "yes":
        problems.append(f"{where}: Redis needs appendonly yes (got {directives.get('appendonly')})")
    return problems


def redis_args(argv: Sequence[str]) -> dict[str, str]:
    """``redis-server --name value ...`` as directives."""
    out = {}
    args = list(argv)
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            out[arg[2:]] = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else ""
    return out


def redis_conf(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if parts and not parts[0].startswith("#"):
            out[parts[0].lower()] = parts[1].strip() if len(parts) > 1 else ""
    return out


# --- durations --------------------------------------------------------------------------------------

_UNITS = {
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "ms": 0.001,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
}


def duration_seconds(text: str | int | float) -> float:
    """``3900``, ``3900s``, ``1h5m``, ``1h 5min`` (systemd and compose spellings) in seconds."""
    if isinstance(text, int | float):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text.strip().lower())
    if not parts or re.sub(r"[\d.\sa-z]", "", text.lower()):
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


# --- systemd ----------------------------------------------------------------------------------------


def read_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A unit file as sections of (key, value) pairs, repeated keys kept in order; it must also load with
    configparser (strict=False, as systemd allows repeated keys)."""
    text = path.read_text()
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text, source=str(path))
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in text.replace("\\\n", " ").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        elif current is not None and "=" in line:
            key, value = line.split("=", 1)
            current.append((key.strip(), value.strip()))
    return sections


def unit_values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def read_env_file(path: Path) -> dict[str, str]:
    """A systemd EnvironmentFile (KEY=VALUE lines, # comments, optional quotes)."""
    env = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def systemd_specifiers(text: str, instance: str) -> str:
    return text.replace("%i", instance).replace("%I", instance).replace("%H", "host.example").replace("%t", "/run")


def systemd_exec(command: str, env: Mapping[str, str]) -> list[str]:
    """An ExecStart= line as systemd runs it: prefixes dropped, ``${VAR}`` one word, ``$VAR`` split."""
    command = command.lstrip("-@:+!")
    words: list[str] = []
    for word in shlex.split(command):
        if re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", word):
            words += env.get(word[1:], "").split()
        else:
            words.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word))
    return words


# --- containers -------------------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def exec_form(args: str, where: str) -> list[str]:
    """A Dockerfile ENTRYPOINT/CMD in JSON (exec) form; the shell form would swallow SIGTERM."""
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        raise AssertionError(f"{where}: {args!r} is not in exec (JSON) form") from None
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"{where}: {args!r}"
    return value


def image_argv(spec: Mapping[str, Any], entrypoint: list[str], cmd: list[str], keys: tuple[str, str]) -> list[str]:
    """The argv a container runs: an overridden entry point drops the image's CMD (Docker and Kubernetes
    alike); ``keys`` are the spec's names for entry point and arguments."""
    ep_key, cmd_key = keys
    ep = spec.get(ep_key)
    args = spec.get(cmd_key)
    if isinstance(ep, str):
        ep = shlex.split(ep)
    if isinstance(args, str):
        args = shlex.split(args)
    if ep is not None:
        return [*ep, *(args or [])]
    return [*entrypoint, *(args if args is not None else cmd)]


def load_fleet_module() -> Any:
    """``deploy/local/fleet.py`` (not a package) as a module."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("deploy_local_fleet", DEPLOY / "local" / "fleet.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module
