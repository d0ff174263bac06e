"""``commit_encoded`` has ``commit``'s semantics: the commit, MVCC and range-lock scenarios run again
with every commit encoded in bulk, plus the bulk shapes log replay sends (large batches of ascending
sets, blocks taken whole from a log file)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from fdbcore import errors
from fdbcore.cluster.interface import ClusterDriver
from fdbcore.encoded_mutations import EncodedMutations
from fdbcore.formats.partitioned_log import PartitionedLogWriter
from fdbcore.formats.plog_blocks import uniform_block
from fdbcore.keys import KeyRange
from fdbcore.mutations import Mutation, MutationType, clear_range, set_value
from tests.fdbcore.cluster import test_commit, test_mvcc, test_range_locks
from tests.fdbcore.cluster.util import read_all
from tests.fdbcore.formats.handmade import sink


class EncodedCommits:
    """A driver whose ``commit`` goes through ``commit_encoded``."""

    def __init__(self, driver: ClusterDriver) -> None:
        self._driver = driver

    def commit(self, mutations: Sequence[Mutation], **kwargs: Any) -> int:
        return self._driver.commit_encoded(EncodedMutations.of(mutations), **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._driver, name)


SCENARIOS: list[Callable[[Any], None]] = [
    test_commit.test_every_atomic_op_matches_fdb_semantics,
    test_commit.test_mutations_apply_in_order_within_a_transaction,
    test_commit.test_versionstamps_are_resolved_at_commit,
    test_commit.test_limits_and_legal_key_range,
    test_mvcc.test_reads_at_older_versions_while_writes_continue,
    test_mvcc.test_conflicts,
    test_range_locks.test_range_locks,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_commit_scenarios_through_commit_encoded(driver: ClusterDriver, scenario: Callable[[Any], None]) -> None:
    scenario(EncodedCommits(driver))


def test_bulk_batches_mixing_ascending_sets_with_other_mutations(driver: ClusterDriver) -> None:
    ascending = [set_value(b"b/%06d" % i, b"v%d" % i) for i in range(20_000)]
    v = driver.commit_encoded(EncodedMutations.of(ascending))
    assert read_all(driver, b"b/", b"b0", v) == [(m.param1, m.param2) for m in ascending]
    # Sets around a clear and atomic ops: each applies in order, the sets in between in bulk.
    batch = [set_value(b"b/%06d" % i, b"w") for i in range(5, 0, -1)]  # descending
    batch += [clear_range(b"b/000003", b"b/000010"), Mutation(MutationType.ADD_VALUE, b"b/000004", b"\x01")]
    batch += [set_value(b"b/%06d" % i, b"x") for i in range(8, 12)]
    v = driver.commit_encoded(EncodedMutations.of(batch), lock_owner=None)
    got = dict(read_all(driver, b"b/000000", b"b/000013", v))
    assert got == {
        b"b/000000": b"v0",
        b"b/000001": b"w",
        b"b/000002": b"w",
        b"b/000004": b"\x01",
        b"b/000008": b"x",
        b"b/000009": b"x",
        b"b/000010": b"x",
        b"b/000011": b"x",
        b"b/000012": b"v12",
    }


def test_a_log_block_taken_whole_commits_like_its_records(driver: ClusterDriver) -> None:
    out = sink()
    writer = PartitionedLogWriter(out, 1 << 16)
    records = [(100 + i, 0, set_value(b"w/%05d" % (i * 7 % 1000), b"%08d" % i)) for i in range(1000)]
    for version, sub, m in records:
        writer.add(version, sub, m)
    writer.finish()
    block = uniform_block(out.getvalue()[: 1 << 16], "block")
    assert block is not None and block.mutations.count == 1000
    driver.lock_range(KeyRange(b"w/", b"w0"), "replay")
    v = driver.commit_encoded(block.mutations, lock_owner="replay")
    expected = {m.param1: m.param2 for _, _, m in records}
    assert read_all(driver, b"w/", b"w0", v) == sorted(expected.items())


def test_a_malformed_batch_is_refused_by_name_and_changes_nothing(driver: ClusterDriver) -> None:
    good = EncodedMutations.of([set_value(b"m/1", b"x"), set_value(b"m/2", b"y")])
    short = dataclasses.replace(good, params2=good.params2[: len(good.params2) // 2])  # one value too few
    with pytest.raises(errors.ClientInvalidOperation) as refused:
        driver.commit_encoded(short)
    assert refused.value.code == 2000 and "encoded mutations" in refused.value.message
    assert driver.get_range(b"m/", b"m0", driver.get_read_version()).kvs == []
