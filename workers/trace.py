"""Structured trace events, one JSON object per line, like FDB's ``--trace-format json`` files.

Events carry FDB's shape (``Type``, ``Severity``, ``Time``, ``DateTime``, ``Machine``, plus details
in CamelCase) so the same tooling can read ours and FDB's. Files go to the log directory given by
``--logdir`` on the CLIs or ``FDBBR_LOG_DIR`` for workers; without one, events are not written.
Never pass secrets as details: URLs are redacted by the container layer before they get here.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SEV_DEBUG, SEV_INFO, SEV_WARN, SEV_WARN_ALWAYS, SEV_ERROR = 5, 10, 20, 30, 40

_lock = threading.Lock()
_log_dir: Path | None = None


def configure(log_dir: str | os.PathLike[str] | None) -> None:
    """Set the directory for this process's trace file (None or "" disables tracing)."""
    global _log_dir
    _log_dir = Path(log_dir) if log_dir else None
    if _log_dir is not None:
        _log_dir.mkdir(parents=True, exist_ok=True)


def _path() -> Path | None:
    if _log_dir is None:
        return None
    return _log_dir / f"trace.{socket.gethostname()}.{os.getpid()}.json"


def event(type_: str, severity: int = SEV_INFO, **details: Any) -> None:
    """Append one trace event; details are written with their names as given (use CamelCase)."""
    path = _path()
    if path is None:
        return
    now = time.time()
    record = {
        "Severity": str(severity),
        "Time": f"{now:.6f}",
        "DateTime": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Type": type_,
        "Machine": socket.gethostname(),
        "PID": str(os.getpid()),
        **{k: v if isinstance(v, (int, float, bool)) else str(v) for k, v in details.items()},
    }
    line = json.dumps(record, separators=(",", ":")) + "\n"
    with _lock, open(path, "a", encoding="utf-8") as f:
        f.write(line)


def read_events(log_dir: str | os.PathLike[str], type_: str | None = None) -> list[dict[str, Any]]:
    """Every event in a log directory (all processes), optionally of one type; for tests and tools."""
    out: list[dict[str, Any]] = []
    for p in sorted(Path(log_dir).glob("trace.*.json")):
        for line in p.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            if type_ is None or rec.get("Type") == type_:
                out.append(rec)
    return out
