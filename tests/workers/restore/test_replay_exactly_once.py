"""Two copies of the same replay task racing on a real cluster still apply every atomic op once."""

from __future__ import annotations

import io
import struct
import threading
from pathlib import Path

import pytest

from fdbcore import naming
from fdbcore.catalog import LogFileRef
from fdbcore.container.local import LocalContainer
from fdbcore.formats.partitioned_log import PartitionedLogWriter
from fdbcore.keys import KeyRange, VersionedRange
from fdbcore.mutations import Mutation, MutationType, clear_range, set_value
from tests.fixtures.cluster import EmbeddedCluster
from workers.restore import replay
from workers.restore.job import Rewrite

UID = "ab" * 16


def write_log(c: LocalContainer, begin: int, end: int, mutations: list[tuple[int, Mutation]]) -> LogFileRef:
    buf = io.BytesIO()
    w = PartitionedLogWriter(buf, 4096)
    for sub, (v, m) in enumerate(mutations):
        w.add(v, sub, m)
    w.finish()
    path = naming.log_file_path(begin, end, naming.new_uid(), 4096, tag=0, total_tags=1)
    c.write(path, buf.getvalue())
    return LogFileRef(path, len(buf.getvalue()), begin, end, 4096, 0, 1, True)


def one() -> bytes:
    return struct.pack("<q", 1)


def test_duplicate_replays_apply_each_add_once(
    embedded_cluster: EmbeddedCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replay, "COMMIT_BYTES", 64)  # many small commits, so the copies interleave
    c = LocalContainer(str(tmp_path / "b"))
    c.create()
    adds = [(v, Mutation(MutationType.ADD_VALUE, b"counter", one())) for v in range(101, 401)]
    noise = [(v, set_value(b"k%03d" % (v % 50), b"x%d" % v)) for v in range(101, 401)]
    interleaved = [m for pair in zip(adds, noise, strict=True) for m in pair]
    files = [
        write_log(c, 100, 250, [m for m in interleaved if m[0] < 250]),
        write_log(c, 250, 500, [m for m in interleaved if m[0] >= 250] + [(450, clear_range(b"k", b"l"))]),
    ]
    vmap = replay.VersionMap([VersionedRange(KeyRange(b"", b"\xff"), 100)])
    embedded_cluster.driver.lock_range(KeyRange(b"", b"\xff"), "restore:" + UID)  # replay writes as its owner
    target = 400
    done: list[bool] = []
    conflicts: list[int] = []
    start = threading.Barrier(2)

    def run() -> None:
        driver = embedded_cluster.driver.__class__(embedded_cluster.cluster_file)
        rep = replay.Replayer(driver, UID, 0, vmap, Rewrite(), target, "restore:" + UID)
        start.wait()
        while not rep.run(replay.partition_stream(c, files, rep.position), 60):
            pass
        done.append(True)
        conflicts.append(rep.conflicts)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert done == [True, True]
    assert sum(conflicts) > 0, "the two copies never raced; the test proves nothing"
    driver = embedded_cluster.driver
    v = driver.get_read_version()
    assert struct.unpack("<q", driver.get(b"counter", v) or b"")[0] == 300
    assert driver.get(b"k001", v) == b"x351"  # the last set of k001 at or before the target
    # the clear at 450 is past the target and must not have been applied
    assert len(driver.get_range(b"k", b"l", v).kvs) == 50


def test_replay_skips_what_the_snapshot_already_has(embedded_cluster: EmbeddedCluster, tmp_path: Path) -> None:
    c = LocalContainer(str(tmp_path / "b"))
    c.create()
    log = [(v, Mutation(MutationType.ADD_VALUE, key, one())) for v in (150, 250) for key in (b"a1", b"b1")]
    files = [write_log(c, 100, 300, log)]
    # keys under "a" come from a batch at version 200, keys under "b" from one at version 100
    vmap = replay.VersionMap([VersionedRange(KeyRange(b"a", b"b"), 200), VersionedRange(KeyRange(b"b", b"c"), 100)])
    embedded_cluster.driver.lock_range(KeyRange(b"a", b"c"), "x")
    rep = replay.Replayer(embedded_cluster.driver, UID, 7, vmap, Rewrite(), 300, "x")
    assert rep.run(replay.partition_stream(c, files, rep.position), 60)
    d = embedded_cluster.driver
    v = d.get_read_version()
    assert struct.unpack("<q", d.get(b"a1", v) or b"")[0] == 1  # only the add at 250
    assert struct.unpack("<q", d.get(b"b1", v) or b"")[0] == 2  # both adds
    assert d.get(replay.marker_key(UID, 7), v) is not None
