"""Job state in Redis: what FDB keeps in BackupConfig / RestoreConfig.

Layout (``<kind>`` is ``backup`` or ``restore``)::

    fdbbr:<kind>:<uid>                 hash   scalar fields (strings; counters via HINCRBY)
    fdbbr:<kind>:<uid>:results:<name>  hash   idempotent per-task results: field = task key, value = JSON
    fdbbr:<kind>:<uid>:errors          list   JSON error records, newest last (capped)
    fdbbr:<kind>tag:<tag>              string uid of the newest job on that tag
    fdbbr:<kind>s                      zset   every job uid by creation time

Writes are single Redis commands or small Lua scripts, so concurrent tasks (and a task that runs
twice after a redelivery) never leave a job half-updated. Task results are keyed by task, so a
task that runs again overwrites its own result instead of adding a second one.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis

from fdbcore import errors

PREFIX = "fdbbr"
MAX_ERRORS = 200

# Atomically claim a tag for a new job unless the tag's current job is still active.
_CLAIM_TAG = """
local current = redis.call('GET', KEYS[1])
if current then
  local state = redis.call('HGET', ARGV[3] .. current, 'state')
  for i = 4, #ARGV do
    if state == ARGV[i] then return current end
  end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', ARGV[3] .. ARGV[1], 'state', ARGV[2])
return false
"""

# Compare-and-set one field: succeed only when its current value is one of the expected values.
_CAS_FIELD = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur == false then cur = '' end
for i = 3, #ARGV do
  if cur == ARGV[i] then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
    return 1
  end
end
return 0
"""

# Record one task's outcome unless a success is already there: the first success stays (results that
# callbacks have read never change under them), and a failure only fills an empty slot.
# ARGV: field, value, "1" for a success. Returns 1 when the value was stored.
_RECORD_OUTCOME = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  if ARGV[3] ~= '1' then return 0 end
  local ok, doc = pcall(cjson.decode, cur)
  if not (ok and type(doc) == 'table' and doc['error'] ~= nil) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


@dataclass(frozen=True)
class ErrorRecord:
    time: float
    phase: str
    name: str
    code: int
    message: str

    @staticmethod
    def from_error(phase: str, err: BaseException) -> ErrorRecord:
        if isinstance(err, errors.FDBError):
            return ErrorRecord(time.time(), phase, err.name, err.code, err.message)
        return ErrorRecord(time.time(), phase, "unknown_error", 4000, f"{type(err).__name__}: {err}")


class JobStore:
    """State of one kind of job (``backup`` or ``restore``)."""

    def __init__(self, client: redis.Redis, kind: str) -> None:
        self._r = client
        self.kind = kind
        self._claim = client.register_script(_CLAIM_TAG)
        self._cas = client.register_script(_CAS_FIELD)
        self._record = client.register_script(_RECORD_OUTCOME)

    # --- keys -----------------------------------------------------------------------------------
    def _job(self, uid: str) -> str:
        return f"{PREFIX}:{self.kind}:{uid}"

    def _tag(self, tag: str) -> str:
        return f"{PREFIX}:{self.kind}tag:{tag}"

    # --- jobs -----------------------------------------------------------------------------------
    def claim_tag(self, tag: str, uid: str, initial_state: str, active_states: Iterable[str]) -> str | None:
        """Make ``uid`` the tag's job unless an active job holds it; returns the blocking uid."""
        blocking = self._claim(
            keys=[self._tag(tag)],
            args=[uid, initial_state, f"{PREFIX}:{self.kind}:", *active_states],
        )
        return _text(blocking) if blocking else None

    def create(self, uid: str, fields: Mapping[str, Any]) -> None:
        pipe = self._r.pipeline()
        pipe.hset(self._job(uid), mapping={k: _encode(v) for k, v in fields.items()})
        pipe.zadd(f"{PREFIX}:{self.kind}s", {uid: time.time()})
        pipe.execute()

    def uid_for_tag(self, tag: str) -> str | None:
        raw = self._r.get(self._tag(tag))
        return _text(raw) if raw is not None else None

    def tags(self) -> list[str]:
        prefix = self._tag("")
        return sorted(_text(k)[len(prefix) :] for k in self._r.scan_iter(match=prefix + "*"))

    def all_uids(self) -> list[str]:
        return [_text(u) for u in self._r.zrange(f"{PREFIX}:{self.kind}s", 0, -1)]

    def exists(self, uid: str) -> bool:
        return bool(self._r.exists(self._job(uid)))

    def get(self, uid: str) -> dict[str, str]:
        raw = self._r.hgetall(self._job(uid))
        if not raw:
            raise errors.BackupDoesNotExist(f"no {self.kind} with UID {uid}")
        return {_text(k): _text(v) for k, v in raw.items()}

    def field(self, uid: str, name: str) -> str | None:
        raw = self._r.hget(self._job(uid), name)
        return _text(raw) if raw is not None else None

    def update(self, uid: str, **fields: Any) -> None:
        self._r.hset(self._job(uid), mapping={k: _encode(v) for k, v in fields.items()})

    def incr(self, uid: str, name: str, amount: int = 1) -> int:
        return int(self._r.hincrby(self._job(uid), name, amount))

    def set_max(self, uid: str, name: str, value: int) -> None:
        """Raise a numeric field to ``value`` if it is lower (never lowers it)."""
        while True:
            cur = self.field(uid, name)
            if cur not in (None, "") and int(cur) >= value:
                return
            if self.compare_and_set(uid, name, [cur or ""], value):
                return

    def compare_and_set(self, uid: str, name: str, expected: Iterable[str], value: Any) -> bool:
        """Set ``name`` only if its current value (``""`` when missing) is in ``expected``."""
        return bool(self._cas(keys=[self._job(uid)], args=[name, _encode(value), *expected]))

    # --- per-task results -----------------------------------------------------------------------
    def put_result(self, uid: str, name: str, task_key: str, result: Any) -> None:
        self._r.hset(f"{self._job(uid)}:results:{name}", task_key, json.dumps(result))

    def record_outcome(self, uid: str, name: str, task_key: str, result: dict[str, Any]) -> bool:
        """Record a task's outcome once: ``{"error": ...}`` for a failure, anything else a success.

        Two copies of a task (a redelivery) may both finish: the first success is kept, so a callback
        never sees a result change after reading it, and a failure never replaces a success. Returns
        whether this outcome was stored (callers count progress only then).
        """
        ok = "error" not in result
        key = f"{self._job(uid)}:results:{name}"
        return bool(self._record(keys=[key], args=[task_key, json.dumps(result), "1" if ok else "0"]))

    def results(self, uid: str, name: str) -> dict[str, Any]:
        raw = self._r.hgetall(f"{self._job(uid)}:results:{name}")
        return {_text(k): json.loads(v) for k, v in raw.items()}

    def clear_results(self, uid: str, name: str) -> None:
        self._r.delete(f"{self._job(uid)}:results:{name}")

    # --- errors ---------------------------------------------------------------------------------
    def add_error(self, uid: str, record: ErrorRecord) -> None:
        key = f"{self._job(uid)}:errors"
        pipe = self._r.pipeline()
        pipe.rpush(key, json.dumps(record.__dict__))
        pipe.ltrim(key, -MAX_ERRORS, -1)
        pipe.execute()

    def errors(self, uid: str) -> list[ErrorRecord]:
        return [ErrorRecord(**json.loads(x)) for x in self._r.lrange(f"{self._job(uid)}:errors", 0, -1)]

    def delete(self, uid: str) -> None:
        job = self._job(uid)
        keys = [job, f"{job}:errors", *self._r.scan_iter(match=f"{job}:results:*")]
        pipe = self._r.pipeline()
        pipe.delete(*keys)
        pipe.zrem(f"{PREFIX}:{self.kind}s", uid)
        pipe.execute()


@contextmanager
def lease(client: redis.Redis, key: str, ttl_ms: int) -> Iterator[bool]:
    """Hold ``key`` as a lease while the block runs; yields False when someone else holds it.

    A holder that dies keeps it until ``ttl_ms`` passes (use the task time limit: no live holder
    runs longer), then the next copy of its work takes over.
    """
    token = secrets.token_hex(8)
    got = bool(client.set(key, token, nx=True, px=ttl_ms))
    try:
        yield got
    finally:
        if got and client.get(key) == token.encode():
            client.delete(key)


def _text(raw: Any) -> str:
    """redis-py returns bytes (we never enable decode_responses: values may be binary)."""
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _encode(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return str(value)


def connect_state(url: str) -> redis.Redis:
    """A Redis client for job state; fails with connection_failed naming the server if unreachable."""
    client = redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
    try:
        client.ping()
    except redis.RedisError as exc:
        where = _redact_redis(url)
        raise errors.ConnectionFailed(f"cannot reach the fleet's Redis at {where}: {exc}") from exc
    return client


def _redact_redis(url: str) -> str:
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://<redacted>@{rest.split('@', 1)[1]}"
    return url
