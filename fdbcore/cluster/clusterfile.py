"""FDB cluster files: ``description:ID@host:port[,host:port...]``.

The same file format serves the embedded cluster (one address, written by ``embedded-cluster serve``
once it listens) and a real FoundationDB cluster, so every tool takes ``-C``/``--cluster-file``
exactly as FDB's do. Lines starting with ``#`` are comments, as in FDB.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fdbcore import errors

_LINE = re.compile(r"^(?P<desc>[A-Za-z0-9_]+):(?P<id>[A-Za-z0-9]+)@(?P<addrs>\S+)$")
_ADDR = re.compile(r"^(?P<host>[^,:\[\]]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})(?::tls)?$")


@dataclass(frozen=True, slots=True)
class ClusterFile:
    description: str
    id: str
    addresses: tuple[tuple[str, int], ...]

    def __str__(self) -> str:
        addrs = ",".join(f"{host}:{port}" for host, port in self.addresses)
        return f"{self.description}:{self.id}@{addrs}"

    @property
    def first_address(self) -> str:
        host, port = self.addresses[0]
        return f"{host}:{port}"


def parse(text: str, source: str = "cluster file") -> ClusterFile:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if len(lines) != 1:
        raise errors.ConnectionStringInvalid(f"{source} must hold exactly one connection string")
    m = _LINE.match(lines[0])
    if not m:
        raise errors.ConnectionStringInvalid(
            f"{source} holds {lines[0]!r}, not a connection string of the form description:ID@host:port"
        )
    addresses = []
    for part in m.group("addrs").split(","):
        am = _ADDR.match(part)
        if not am or not 0 < int(am.group("port")) < 65536:
            raise errors.ConnectionStringInvalid(f"{source}: bad address {part!r}")
        addresses.append((am.group("host"), int(am.group("port"))))
    return ClusterFile(m.group("desc"), m.group("id"), tuple(addresses))


def read(path: str | os.PathLike[str]) -> ClusterFile:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise errors.FileNotFound(f"cluster file {os.fspath(path)} does not exist") from None
    except OSError as exc:
        raise errors.FileNotReadable(f"cannot read cluster file {os.fspath(path)}: {exc}") from exc
    return parse(text, f"cluster file {os.fspath(path)}")


def write_atomic(path: str | os.PathLike[str], cluster: ClusterFile) -> None:
    """Write ``cluster`` so that readers see the old file or the new one, never a partial one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"{cluster}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
