"""Job state in Redis: what FDB keeps in BackupConfig / RestoreConfig.

Layout (``<kind>`` is ``backup`` or ``restore``)::

    fdbbr:<kind>:<uid>                 hash   the job's record (:mod:`workers.record`; counters via HINCRBY)
    fdbbr:<kind>:<uid>:<part>:<seq>    hash   a record belonging to the job (e.g. one snapshot's)
    fdbbr:<kind>:<uid>:<document>      string an immutable JSON document (a restore's plan)
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
from typing import Any, Generic, TypeVar

import redis

from fdbcore import errors
from fdbcore.container.url import redact_url, without_secret
from workers.record import Record

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


# Create a hash from ARGV's field/value pairs unless the key exists. Returns 1 when it was created.
_PUT_NEW = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
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


R = TypeVar("R", bound=Record)
J = TypeVar("J", bound=Record)


class RecordHash(Generic[R]):
    """One record's Redis hash: typed reads, checked updates, counters and compare-and-set."""

    def __init__(self, store: JobStore[Any], key: str, cls: type[R]) -> None:
        self._store = store
        self.key = key
        self.cls = cls

    def load(self) -> R | None:
        raw = self._store.client.hgetall(self.key)
        return self.cls.from_fields({_text(k): _text(v) for k, v in raw.items()}) if raw else None

    def get(self) -> R:
        record = self.load()
        if record is None:
            raise errors.BackupDoesNotExist(f"no {self._store.kind} record {self.key}")
        return record

    def put(self, record: R) -> None:
        self._store.client.hset(self.key, mapping=_mapping(record.to_fields()))

    def put_new(self, record: R) -> bool:
        """Store ``record`` unless the hash exists (concurrent creators agree on the first one)."""
        pairs = [x for kv in record.to_fields().items() for x in kv]
        return bool(self._store.put_new(keys=[self.key], args=pairs))

    def update(self, **changes: object) -> None:
        self._store.client.hset(self.key, mapping=_mapping(self.cls.encode_changes(changes)))

    def incr(self, name: str, amount: int = 1, *, key: int | None = None) -> int:
        return int(self._store.client.hincrby(self.key, self.cls.field_name(name, key), amount))

    def compare_and_set(self, name: str, expected: Iterable[object], value: object, *, key: int | None = None) -> bool:
        """Set ``name`` only if its current value is one of ``expected`` (None: the field is missing)."""
        field_name = self.cls.field_name(name, key)
        encode = str if key is not None else lambda v: self.cls.encode_value(name, v)
        wants = ["" if v is None else encode(v) for v in expected]
        new = encode(value)
        return bool(self._store.cas(keys=[self.key], args=[field_name, new, *wants]))

    def set_max(self, name: str, value: int) -> None:
        """Raise a numeric field to ``value`` if it is lower (never lowers it)."""
        while True:
            cur = getattr(self.get(), name)
            if cur is not None and cur >= value:
                return
            if self.compare_and_set(name, [cur], value):
                return


class JobStore(Generic[J]):
    """State of one kind of job (``backup`` or ``restore``), whose main record is ``record``."""

    def __init__(self, client: redis.Redis, kind: str, record: type[J]) -> None:
        self.client = client
        self.kind = kind
        self.record = record
        self._claim = client.register_script(_CLAIM_TAG)
        self.cas = client.register_script(_CAS_FIELD)
        self.put_new = client.register_script(_PUT_NEW)
        self._record_script = client.register_script(_RECORD_OUTCOME)

    # --- keys -----------------------------------------------------------------------------------
    def _job(self, uid: str) -> str:
        return f"{PREFIX}:{self.kind}:{uid}"

    def _tag(self, tag: str) -> str:
        return f"{PREFIX}:{self.kind}tag:{tag}"

    # --- records --------------------------------------------------------------------------------
    def job(self, uid: str) -> RecordHash[J]:
        return RecordHash(self, self._job(uid), self.record)

    def part(self, uid: str, cls: type[R], name: str, seq: int) -> RecordHash[R]:
        """A record that belongs to the job, e.g. one snapshot period's ``rangefile`` record."""
        return RecordHash(self, f"{self._job(uid)}:{name}:{seq}", cls)

    def get(self, uid: str) -> J:
        return self.job(uid).get()

    def put_document(self, uid: str, name: str, text: str) -> None:
        """An immutable JSON document of the job (e.g. a restore's plan)."""
        self.client.set(f"{self._job(uid)}:{name}", text.encode())

    def document(self, uid: str, name: str) -> str:
        raw = self.client.get(f"{self._job(uid)}:{name}")
        if raw is None:
            raise errors.BackupDoesNotExist(f"{self.kind} {uid} has no {name}")
        return _text(raw)

    # --- jobs -----------------------------------------------------------------------------------
    def claim_tag(self, tag: str, uid: str, initial_state: str, active_states: Iterable[str]) -> str | None:
        """Make ``uid`` the tag's job unless an active job holds it; returns the blocking uid."""
        blocking = self._claim(
            keys=[self._tag(tag)],
            args=[uid, initial_state, f"{PREFIX}:{self.kind}:", *active_states],
        )
        return _text(blocking) if blocking else None

    def create(self, uid: str, job: J) -> None:
        pipe = self.client.pipeline()
        pipe.hset(self._job(uid), mapping=_mapping(job.to_fields()))
        pipe.zadd(f"{PREFIX}:{self.kind}s", {uid: time.time()})
        pipe.execute()

    def uid_for_tag(self, tag: str) -> str | None:
        raw = self.client.get(self._tag(tag))
        return _text(raw) if raw is not None else None

    def job_for_tag(self, tag: str) -> J | None:
        uid = self.uid_for_tag(tag)
        return self.get(uid) if uid else None

    def tags(self) -> list[str]:
        prefix = self._tag("")
        return sorted(_text(k)[len(prefix) :] for k in self.client.scan_iter(match=prefix + "*"))

    def all_uids(self) -> list[str]:
        return [_text(u) for u in self.client.zrange(f"{PREFIX}:{self.kind}s", 0, -1)]

    def exists(self, uid: str) -> bool:
        return bool(self.client.exists(self._job(uid)))

    # --- per-task results -----------------------------------------------------------------------
    def put_result(self, uid: str, name: str, task_key: str, result: Any) -> None:
        self.client.hset(f"{self._job(uid)}:results:{name}", task_key, json.dumps(result))

    def record_outcome(self, uid: str, name: str, task_key: str, result: dict[str, Any]) -> bool:
        """Record a task's outcome once: ``{"error": ...}`` for a failure, anything else a success.

        Two copies of a task (a redelivery) may both finish: the first success is kept, so a callback
        never sees a result change after reading it, and a failure never replaces a success. Returns
        whether this outcome was stored (callers count progress only then).
        """
        ok = "error" not in result
        key = f"{self._job(uid)}:results:{name}"
        return bool(self._record_script(keys=[key], args=[task_key, json.dumps(result), "1" if ok else "0"]))

    def results(self, uid: str, name: str) -> dict[str, Any]:
        raw = self.client.hgetall(f"{self._job(uid)}:results:{name}")
        return {_text(k): json.loads(v) for k, v in raw.items()}

    # --- errors ---------------------------------------------------------------------------------
    def add_error(self, uid: str, record: ErrorRecord) -> None:
        key = f"{self._job(uid)}:errors"
        pipe = self.client.pipeline()
        pipe.rpush(key, json.dumps(record.__dict__))
        pipe.ltrim(key, -MAX_ERRORS, -1)
        pipe.execute()

    def errors(self, uid: str) -> list[ErrorRecord]:
        return [ErrorRecord(**json.loads(x)) for x in self.client.lrange(f"{self._job(uid)}:errors", 0, -1)]

    def delete(self, uid: str) -> None:
        job = self._job(uid)
        keys = [job, *self.client.scan_iter(match=f"{job}:*")]
        pipe = self.client.pipeline()
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


def job_identity(uid: str, tag: str, url: str, cluster_file: str, credential_files: Iterable[str]) -> dict[str, Any]:
    """The fields every job record starts with. No secret is stored: the URL loses its inline secret
    and token (agents resolve credentials from their own files or environment), and is shown redacted."""
    return {
        "uid": uid,
        "tag": tag,
        "url": without_secret(url),
        "url_display": redact_url(url),
        "cluster_file": cluster_file,
        "credential_files": list(credential_files),
    }


def _mapping(fields: dict[str, str]) -> Mapping[Any, Any]:
    """redis-py's stubs want a mapping of its own key and value unions."""
    return fields


def _text(raw: Any) -> str:
    """redis-py returns bytes (we never enable decode_responses: values may be binary)."""
    return raw.decode() if isinstance(raw, bytes) else str(raw)


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
