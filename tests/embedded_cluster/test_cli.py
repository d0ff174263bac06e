"""The ``embedded-cluster`` commands and their exact output shapes."""

from __future__ import annotations

import hashlib
import json
import random
import struct

from fdbcore.atomic import versionstamp
from tests.fixtures.cluster import EmbeddedCluster


def expected_digest(pairs: list[tuple[bytes, bytes]]) -> str:
    sha = hashlib.sha256()
    for k, v in pairs:
        sha.update(struct.pack(">I", len(k)) + k + struct.pack(">I", len(v)) + v)
    return sha.hexdigest()


def test_exec_checksum_status(embedded_cluster: EmbeddedCluster) -> None:
    stdin = "\n".join(
        [
            json.dumps({"ops": [["set", b"a".hex(), b"1".hex()], ["set", b"b".hex(), b"2".hex()]]}),
            "",
            json.dumps({"ops": [["add", b"n".hex(), "0500000000000000"], ["clear", b"b".hex()]]}),
            json.dumps({"ops": [["clear_range", b"z".hex(), b"zz".hex()], ["max", b"n".hex(), "0300000000000000"]]}),
            json.dumps({"ops": [["set_versionstamped_value", b"vs".hex(), "00" * 10 + struct.pack("<i", 0).hex()]]}),
        ]
    )
    out = embedded_cluster.cli("exec", input=stdin)
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [sorted(line) for line in lines] == [["version"]] * 3 + [["version", "versionstamp"]]
    versions = [line["version"] for line in lines]
    assert versions == sorted(versions) and len(set(versions)) == 4
    assert lines[3]["versionstamp"] == versionstamp(versions[3]).hex()

    expected = [(b"a", b"1"), (b"n", b"\x05" + b"\x00" * 7), (b"vs", versionstamp(versions[3]))]
    result = json.loads(embedded_cluster.cli("checksum").stdout)
    assert list(result) == ["version", "keys", "bytes", "sha256"]
    assert result["keys"] == 3 and result["bytes"] == sum(len(k) + len(v) for k, v in expected)
    assert result["sha256"] == expected_digest(expected)
    assert result["version"] >= versions[3]

    # At an older version and over a sub-range.
    old = json.loads(embedded_cluster.cli("checksum", "--version", str(versions[0])).stdout)
    assert old == {
        "version": versions[0],
        "keys": 2,
        "bytes": 4,
        "sha256": expected_digest([(b"a", b"1"), (b"b", b"2")]),
    }
    sub = json.loads(embedded_cluster.cli("checksum", "--begin", b"m".hex(), "--end", b"o".hex()).stdout)
    assert sub["keys"] == 1 and sub["sha256"] == expected_digest(expected[1:2])

    status = json.loads(embedded_cluster.cli("status", "--json").stdout)
    assert {"version", "shards", "knobs", "captures", "locks", "extra"} <= set(status)
    assert status["knobs"]["shard_encode_location_metadata"] == "0"
    assert status["knobs"]["enable_read_lock_on_range"] == "0"
    assert status["shards"][0]["begin"] == "" and status["shards"][-1]["end"] == "ffff"
    text = embedded_cluster.cli("status").stdout
    assert "Version:" in text and "Shards: 5" in text and "max_read_transaction_life_versions = 5000000" in text


def test_exec_errors_name_fdb_error_and_exit_nonzero(embedded_cluster: EmbeddedCluster) -> None:
    bad = embedded_cluster.cli("exec", input='{"ops": [["set", "ffff00", "00"]]}\n', check=False)
    assert bad.returncode != 0
    assert "key_outside_legal_range" in bad.stderr and "2004" in bad.stderr
    usage = embedded_cluster.cli("exec", input='{"ops": [["frobnicate", "00", "00"]]}\n', check=False)
    assert usage.returncode == 2 and "invalid_option_value" in usage.stderr
    partial = embedded_cluster.cli(
        "exec", input='{"ops": [["set", "61", "31"]]}\n{"ops": [["set", "61"]]}\n', check=False
    )
    assert partial.returncode != 0 and len(partial.stdout.splitlines()) == 1  # the first one committed


def test_load_fills_and_keeps_writing(embedded_cluster: EmbeddedCluster) -> None:
    out = embedded_cluster.cli("load", "--keys", "3000", "--value-size", "50", "--rate", "3000", "--duration", "1.5")
    summary = json.loads(out.stdout.splitlines()[-1])
    assert summary["keys"] == 3000 and summary["mutations"] > 3000 + 1000
    assert "fill:" in out.stderr and "write:" in out.stderr  # plain progress lines when not a terminal
    db = embedded_cluster.driver
    v = db.get_read_version()
    counters = db.get_range(b"load/counter/", b"load/counter0", v).kvs
    assert counters and all(len(value) == 8 for _, value in counters)
    keys = db.get_range(b"load/0", b"load/9", v, limit=10_000).kvs
    assert 1000 < len(keys) < 3700 and all(len(value) == 50 for _, value in keys)


def test_load_fill_is_deterministic(embedded_cluster: EmbeddedCluster) -> None:
    embedded_cluster.cli("load", "--keys", "500", "--value-size", "20", "--seed", "5")
    rng = random.Random(5)
    expected = [(b"load/%010d" % i, rng.randbytes(20)) for i in range(500)]
    got = json.loads(embedded_cluster.cli("checksum", "--begin", b"load/".hex(), "--end", b"load0".hex()).stdout)
    assert (got["keys"], got["sha256"]) == (500, expected_digest(expected))


def test_checksum_at_latest_is_one_server_side_scan_equal_to_a_versioned_read(
    embedded_cluster: EmbeddedCluster,
) -> None:
    embedded_cluster.cli("load", "--keys", "3000", "--value-size", "40")
    latest = json.loads(embedded_cluster.cli("checksum").stdout)
    at = json.loads(embedded_cluster.cli("checksum", "--version", str(latest["version"])).stdout)
    assert (latest["keys"], latest["bytes"], latest["sha256"]) == (at["keys"], at["bytes"], at["sha256"])
    assert latest["keys"] == 3000
