import threading

import pytest

from fdbcore import errors
from workers.state import ErrorRecord, JobStore, connect_state


@pytest.fixture
def store(redis_url: str) -> JobStore:
    return JobStore(connect_state(redis_url + "/2"), "backup")


def test_one_active_job_per_tag(store: JobStore) -> None:
    active = ["submitted", "running"]
    assert store.claim_tag("default", "a" * 32, "submitted", active) is None
    assert store.claim_tag("default", "b" * 32, "submitted", active) == "a" * 32
    assert store.uid_for_tag("default") == "a" * 32
    store.update("a" * 32, state="completed")
    assert store.claim_tag("default", "b" * 32, "submitted", active) is None
    assert store.uid_for_tag("default") == "b" * 32
    assert store.tags() == ["default"]


def test_concurrent_claims_have_one_winner(store: JobStore) -> None:
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


def test_fields_counters_and_cas(store: JobStore) -> None:
    uid = "c" * 32
    store.create(uid, {"tag": "t", "ranges": [["", "ff"]], "stop_when_done": True})
    assert store.get(uid)["stop_when_done"] == "1"
    assert store.incr(uid, "bytes", 10) == 10
    assert store.compare_and_set(uid, "saved", [""], 100)
    assert not store.compare_and_set(uid, "saved", ["99"], 200)
    assert store.field(uid, "saved") == "100"
    store.set_max(uid, "saved", 50)
    assert store.field(uid, "saved") == "100"
    store.set_max(uid, "saved", 150)
    assert store.field(uid, "saved") == "150"


def test_results_are_idempotent_per_task(store: JobStore) -> None:
    uid = "d" * 32
    store.create(uid, {"tag": "t"})
    store.put_result(uid, "rangefile:1", "0", {"files": ["a"]})
    store.put_result(uid, "rangefile:1", "0", {"files": ["b"]})
    store.put_result(uid, "rangefile:1", "1", {"files": []})
    assert store.results(uid, "rangefile:1") == {"0": {"files": ["b"]}, "1": {"files": []}}


def test_errors_and_missing_job(store: JobStore) -> None:
    uid = "e" * 32
    store.create(uid, {"tag": "t"})
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
