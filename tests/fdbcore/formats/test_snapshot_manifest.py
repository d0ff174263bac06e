from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fdbcore import errors
from fdbcore.formats.snapshot_manifest import (
    BulkDumpSnapshotManifest,
    SnapshotManifest,
    parse_snapshot_manifest,
)
from fdbcore.keys import KeyRange
from tests.fdbcore.formats.strategies import keys

F1 = "kvranges/snapshot.000000000000000100/0/range,100,0123456789abcdef0123456789abcdef,1048576"
F2 = "kvranges/snapshot.000000000000000100/0/range,120,fedcba9876543210fedcba9876543210,1048576"
TRICKY = b'a"b\\c\n\x01\x7f\xff/'
JOB = "0123456789abcdef0123456789abcdef"


def test_range_file_manifest_exact_text() -> None:
    m = SnapshotManifest(
        begin_version=100,
        end_version=120,
        files=(F2, F1),
        key_ranges={F2: KeyRange(TRICKY, b"\xff"), F1: KeyRange(b"", TRICKY)},
        total_bytes=2048,
    )
    expected = (
        '{"beginVersion":100,"endVersion":120,'
        f'"files":["{F2}","{F1}"],'
        f'"keyRanges":{{"{F1}":{{"beginKey":"","endKey":"a\\"b\\\\c\\n\\u0001\\u007F\\u00FF/"}},'
        f'"{F2}":{{"beginKey":"a\\"b\\\\c\\n\\u0001\\u007F\\u00FF/","endKey":"\\u00FF"}}}},'
        '"totalBytes":2048}'
    )
    assert m.to_json() == expected.encode()
    assert parse_snapshot_manifest(m.to_json(), 100, 120) == m


def test_bulkdump_manifest_exact_text() -> None:
    m = BulkDumpSnapshotManifest(
        begin_version=500,
        end_version=530,
        job_id=JOB,
        ranges=(KeyRange(b"", b"\xff"),),
        total_bytes=1234,
        total_keys=10,
    )
    expected = (
        f'{{"beginVersion":500,"bulkDumpJobId":"{JOB}","endVersion":530,"files":[],'
        '"ranges":[{"begin":"","end":"\\u00FF"}],"snapshotType":"bulkdump","totalBytes":1234,"totalKeys":10}'
    )
    assert m.to_json() == expected.encode()
    assert parse_snapshot_manifest(m.to_json(), 500, 530) == m


def test_reads_fdb_quirks() -> None:
    """FDB writes 0 bytes/keys for bulkdump; its reader keeps the low 8 bits of \\uHHHH and raw bytes."""
    fdb = (
        f'{{"beginVersion":7,"bulkDumpJobId":"{JOB}","endVersion":7,"files":[],'
        '"ranges":[{"begin":"\\u0141","end":"\xfe"}],"snapshotType":"bulkdump","totalBytes":0,"totalKeys":0}'
    ).encode("latin-1")
    m = parse_snapshot_manifest(fdb, 7, 7)
    assert m == BulkDumpSnapshotManifest(7, 7, JOB, (KeyRange(b"A", b"\xfe"),), 0, 0)
    legacy = b'{"beginVersion":1,"endVersion":2,"files":["' + F1.encode() + b'"],"totalBytes":5}'
    assert parse_snapshot_manifest(legacy, 1, 2) == SnapshotManifest(1, 2, (F1,), {}, 5)


def doc(**changes: object) -> bytes:
    base: dict[str, object] = {
        "beginVersion": 1,
        "endVersion": 2,
        "files": [F1],
        "keyRanges": {F1: {"beginKey": "", "endKey": "z"}},
        "totalBytes": 5,
    }
    base.update(changes)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (doc(beginVersion=0), errors.RestoreCorruptedData, "beginVersion"),
        (doc(endVersion=3), errors.RestoreCorruptedData, "endVersion"),
        (doc(endVersion=None), errors.RestoreCorruptedData, "endVersion"),
        (doc(files="x"), errors.RestoreCorruptedData, "files"),
        (doc(files=[1]), errors.RestoreCorruptedData, "files"),
        (doc(keyRanges={F1: {"beginKey": ""}}), errors.RestoreCorruptedData, "keyRanges"),
        (doc(keyRanges={F1: {"beginKey": "b", "endKey": "a"}}), errors.RestoreCorruptedData, "inverted"),
        (doc(totalBytes=True), errors.RestoreCorruptedData, "totalBytes"),
        (doc(bulkDumpJobId="xyz"), errors.RestoreCorruptedData, "bulkDumpJobId"),
        (doc(bulkDumpJobId=JOB), errors.RestoreCorruptedData, "ranges"),
        (b'{"beginVersion":1,', errors.RestoreError, "not valid JSON"),
        (b"[]", errors.RestoreCorruptedData, "object"),
    ],
)
def test_validation(data: bytes, error: type[errors.FDBError], match: str) -> None:
    with pytest.raises(error, match=match):
        parse_snapshot_manifest(data, 1, 2)


paths = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=30)


@given(st.dictionaries(paths, st.tuples(keys, keys).map(sorted), max_size=8), st.integers(0, 2**63 - 1))
def test_range_manifest_round_trip(files: dict[str, list[bytes]], total: int) -> None:
    m = SnapshotManifest(5, 9, tuple(files), {p: KeyRange(*r) for p, r in files.items()}, total)
    text = m.to_json()
    assert all(0x20 <= b <= 0x7E for b in text)  # every other byte is escaped
    assert parse_snapshot_manifest(text, 5, 9) == m


@given(st.lists(st.tuples(keys, keys).map(sorted), max_size=5), st.integers(0, 2**40), st.integers(0, 2**40))
def test_bulkdump_manifest_round_trip(ranges: list[list[bytes]], nbytes: int, nkeys: int) -> None:
    m = BulkDumpSnapshotManifest(3, 4, JOB, tuple(KeyRange(*r) for r in ranges), nbytes, nkeys)
    assert parse_snapshot_manifest(m.to_json(), 3, 4) == m


def _sealed() -> SnapshotManifest:
    return SnapshotManifest(
        begin_version=100,
        end_version=120,
        files=(F1, F2),
        key_ranges={F1: KeyRange(b"", TRICKY), F2: KeyRange(TRICKY, b"\xff")},
        total_bytes=2048,
        checksums={F1: "a" * 64, F2: "b" * 64},
    )


def test_sealed_manifest_round_trips_with_its_checksums() -> None:
    m = _sealed()
    text = m.to_json()
    assert b'"fileSha256":{' in text and b'"manifestSha256":"' in text
    assert parse_snapshot_manifest(text, 100, 120) == m
    bulk = BulkDumpSnapshotManifest(100, 120, JOB, (KeyRange(b"", b"\xff"),), 10, 1, {"bulkdump_data/x": "c" * 64})
    assert parse_snapshot_manifest(bulk.to_json(), 100, 120) == bulk


def test_every_flipped_byte_of_a_sealed_manifest_is_refused_or_changes_nothing() -> None:
    """A flip is refused, unless it lands in a ``\\u00HH`` escape's high byte, which FDB's reader
    ignores (so the manifest still says exactly what was sealed)."""
    m = _sealed()
    text = m.to_json()
    harmless = 0
    for i in range(len(text)):
        damaged = text[:i] + bytes([text[i] ^ 0x01]) + text[i + 1 :]
        try:
            parsed = parse_snapshot_manifest(damaged, 100, 120)
        except (errors.RestoreCorruptedData, errors.RestoreError):
            continue
        assert parsed == m, f"a flip at byte {i} changed the manifest without being noticed"
        harmless += 1
    assert harmless <= text.count(b"\\u00") * 2


def test_file_checksums_without_the_seal_are_refused() -> None:
    doc = json.loads(_sealed().to_json())
    del doc["manifestSha256"]
    with pytest.raises(errors.RestoreCorruptedData, match="without manifestSha256"):
        parse_snapshot_manifest(json.dumps(doc).encode(), 100, 120)
