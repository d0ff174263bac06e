"""Versions: strictly increasing per commit, advancing while idle, never backwards across restarts."""

from __future__ import annotations

import time

from embedded_cluster.versions import RECOVERY_VERSION_JUMP, VERSIONS_PER_SECOND
from fdbcore.mutations import set_value
from tests.fixtures.cluster import EmbeddedCluster


def test_commit_versions_increase_and_track_wall_time(embedded_cluster: EmbeddedCluster) -> None:
    db = embedded_cluster.driver
    versions = [db.commit([set_value(b"k%d" % i, b"v")]) for i in range(50)]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert db.get_read_version() >= versions[-1]

    # About 1,000,000 versions per second, even with nothing to commit (idle commits advance them).
    v0, t0 = db.get_read_version(), time.monotonic()
    time.sleep(0.6)
    v1, t1 = db.get_read_version(), time.monotonic()
    rate = (v1 - v0) / (t1 - t0)
    assert 0.6 * VERSIONS_PER_SECOND < rate < 1.5 * VERSIONS_PER_SECOND
    assert db.commit([]) > v1


def test_versions_never_go_backwards_across_restart_and_kill9(embedded_cluster: EmbeddedCluster) -> None:
    db = embedded_cluster.driver
    before = db.commit([set_value(b"a", b"1")])
    assert embedded_cluster.stop() == 0  # SIGTERM: a clean exit
    embedded_cluster.start()
    after_restart = db.get_read_version()
    assert after_restart >= before + RECOVERY_VERSION_JUMP
    v = db.commit([set_value(b"b", b"2")])
    assert v > after_restart

    embedded_cluster.kill9()
    embedded_cluster.start()
    after_crash = db.get_read_version()
    assert after_crash >= v + RECOVERY_VERSION_JUMP
    assert db.commit([set_value(b"c", b"3")]) > after_crash
    status = db.status()
    assert status.extra["recovery_version"] > v


def test_timekeeper_maps_times_and_versions(embedded_cluster: EmbeddedCluster) -> None:
    db = embedded_cluster.driver
    time.sleep(1.2)  # at least one entry per second
    now = time.time()
    v_now = db.get_read_version()
    estimated = db.version_at_time(now)
    assert abs(estimated - v_now) < 1.5 * VERSIONS_PER_SECOND
    t = db.time_at_version(v_now)
    assert t is not None and abs(t - now) <= 2
    summary = db.status().extra["timekeeper"]
    assert summary["entries"] >= 1 and summary["last_version"] <= db.get_read_version()
