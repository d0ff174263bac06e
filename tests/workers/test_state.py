import threading
from dataclasses import dataclass, field

import pytest

from fdbcore import errors
from fdbcore.encryption import EncryptionSettings
from fdbcore.keys import KeyRange
from fdbcore.modes import RestoreMode, SnapshotMode
from workers.backup.job import BackupJob, BackupState
from workers.encryption import encryption_fields
from workers.record import Record, keyed
from workers.state import ErrorRecord, JobStore, connect_state, job_identity


@pytest.fixture
def store(redis_url: str) -> JobStore[BackupJob]:
    return JobStore(connect_state(redis_url + "/2"), "backup", BackupJob)


def _job(uid: str) -> BackupJob:
    return BackupJob(
        uid=uid,
        tag="t",
        url="file:///x",
        url_display="file:///x",
        cluster_file="c",
        mode=SnapshotMode.RANGEFILE,
        ranges=[],
        state=BackupState.SUBMITTED,
    )


def test_one_active_job_per_tag(store: JobStore[BackupJob]) -> None:
    active = ["submitted", "running"]
    assert store.claim_tag("default", "a" * 32, "submitted", active) is None
    assert store.claim_tag("default", "b" * 32, "submitted", active) == "a" * 32
    assert store.uid_for_tag("default") == "a" * 32
    store.job("a" * 32).update(state=BackupState.COMPLETED)
    assert store.claim_tag("default", "b" * 32, "submitted", active) is None
    assert store.uid_for_tag("default") == "b" * 32
    assert store.tags() == ["default"]


def test_concurrent_claims_have_one_winner(store: JobStore[BackupJob]) -> None:
    winners: list[str] = []

    def claim(uid: str) -> None:
        if store.claim_tag("t", uid, "submitted", ["submitted"]) is None:
            winners.append(uid)

    threads = [threading.Thread(target=claim, args=(f"{i:032x}",)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1


@dataclass(frozen=True, kw_only=True)
class Sample(Record):
    uid: str
    state: str = "submitted"
    ranges: list[KeyRange] = field(default_factory=list)
    stop_when_done: bool = True
    saved: int | None = None
    bytes: int = 0
    mode: RestoreMode = RestoreMode.RANGEFILE
    per_tag: dict[int, int] = keyed("per_tag:")


def test_records_round_trip_every_field_type() -> None:
    rec = Sample(uid="x", ranges=[KeyRange(b"", b"\xff")], saved=5, mode=RestoreMode.BULKLOAD, per_tag={0: 7, 3: 9})
    fields = rec.to_fields()
    assert fields["stop_when_done"] == "1" and fields["per_tag:3"] == "9" and fields["mode"] == "bulkload"
    assert Sample.from_fields(fields) == rec
    assert Sample.from_fields({"uid": "y"}) == Sample(uid="y")  # defaults live in the declaration
    with pytest.raises(KeyError, match="uid"):
        Sample.from_fields({})


def test_updates_are_checked_against_the_declaration() -> None:
    assert Sample.encode_changes({"saved": None, "per_tag": {2: 4}}) == {"saved": "", "per_tag:2": "4"}
    with pytest.raises(TypeError, match="no updatable field 'sved'"):
        Sample.encode_changes({"sved": 1})
    with pytest.raises(TypeError, match="cannot hold"):
        Sample.encode_changes({"bytes": "10"})
    with pytest.raises(TypeError, match="cannot hold"):
        Sample.encode_changes({"bytes": True})  # a bool is not a count
    with pytest.raises(TypeError, match="cannot hold"):
        Sample.encode_changes({"mode": 3})


def test_fields_counters_and_cas(redis_url: str) -> None:
    store = JobStore(connect_state(redis_url + "/2"), "sample", Sample)
    uid = "c" * 32
    store.create(uid, Sample(uid=uid))
    record = store.job(uid)
    assert record.incr("bytes", 10) == 10
    assert record.compare_and_set("saved", [None], 100)
    assert not record.compare_and_set("saved", [99], 200)
    assert store.get(uid).saved == 100
    record.set_max("saved", 50)
    assert store.get(uid).saved == 100
    record.set_max("saved", 150)
    assert store.get(uid).saved == 150
    assert record.compare_and_set("per_tag", [None], 3, key=1)
    assert not record.compare_and_set("per_tag", [2], 4, key=1)
    assert store.get(uid).per_tag == {1: 3}
    part = store.part(uid, Sample, "period", 1)
    assert part.put_new(Sample(uid="first")) and not part.put_new(Sample(uid="second"))
    assert part.get().uid == "first"
    with pytest.raises(TypeError):
        record.incr("nope")


def test_results_are_idempotent_per_task(store: JobStore[BackupJob]) -> None:
    uid = "d" * 32
    store.create(uid, _job(uid))
    store.put_result(uid, "rangefile:1", "0", {"files": ["a"]})
    store.put_result(uid, "rangefile:1", "0", {"files": ["b"]})
    store.put_result(uid, "rangefile:1", "1", {"files": []})
    assert store.results(uid, "rangefile:1") == {"0": {"files": ["b"]}, "1": {"files": []}}


def test_errors_and_missing_job(store: JobStore[BackupJob]) -> None:
    uid = "e" * 32
    store.create(uid, _job(uid))
    store.add_error(uid, ErrorRecord.from_error("bulkdump", errors.BackupBulkdumpTimeout("deadline passed")))
    [rec] = store.errors(uid)
    assert (rec.name, rec.code, rec.phase) == ("backup_bulkdump_timeout", 2392, "bulkdump")
    with pytest.raises(errors.BackupDoesNotExist):
        store.get("f" * 32)
    store.delete(uid)
    assert not store.exists(uid)


def test_unreachable_redis_is_a_named_error() -> None:
    with pytest.raises(errors.ConnectionFailed, match=r"127\.0\.0\.1:1"):
        connect_state("redis://127.0.0.1:1/2")


def test_job_records_keep_no_secret_and_only_the_keys_whereabouts() -> None:
    """The stored URL loses its inline secret; encryption is the key file's path, block size and check value."""
    settings = EncryptionSettings("/etc/fdbbr/encryption.key", 4096, "ab" * 16)
    url = "blobstore://AKID:the-secret:the-token@s3.example.com/b?bucket=x"
    job = BackupJob(
        **job_identity("u", "t", url, "c", ["/creds.json"]),
        **encryption_fields(settings),
        mode=SnapshotMode.BOTH,
        ranges=[],
        state=BackupState.SUBMITTED,
    )
    stored = job.to_fields()
    assert not any("the-secret" in v or "the-token" in v for v in stored.values()), stored
    assert stored["url"] == "blobstore://AKID@s3.example.com/b?bucket=x"
    assert BackupJob.from_fields(stored).encryption == settings
    assert _job("plain").encryption is None
