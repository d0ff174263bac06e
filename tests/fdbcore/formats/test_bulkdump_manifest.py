from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fdbcore import errors
from fdbcore.formats.bulkdump_manifest import (
    BatchManifest,
    JobManifestEntry,
    check_contiguous,
    entries_covering,
    format_job_manifest,
    iter_job_manifest,
    parse_job_manifest,
)
from fdbcore.formats.io import BytesSource
from fdbcore.keys import KeyRange
from tests.fdbcore.formats.strategies import keys

JOB, TASK = "11112222333344445555666677778888", "9999aaaabbbbccccddddeeeeffff0000"
SHA = "ab" * 32

FDB_STYLE = (
    "[FormatVersion]: 1, [RootPath]: blobstore://host/data/b/bulkdump_data, "
    f"[RelativePath]: {JOB}/{TASK}/3, [ManifestFileName]: 812-manifest.txt, [DataFileName]: 812-data.sst, "
    "[ByteSampleFileName]: , [ChecksumValue]: , [ChecksumMethod]: , [BeginKey]: 00 ff, [EndKey]: 61 62 00, "
    "[Version]: 812, [Bytes]: 4096, [KeyCount]: 12, [ByteSampleVersion]: 0, [ByteSampleMethod]: hashlittle2, "
    "[ByteSampleFactor]: 250, [ByteSampleOverhead]: 100, [ByteSampleMinimalProbability]: 0.000000, "
    "[loadType]: 1, [TransportMethod]: 2"
)


def batch(**changes: object) -> BatchManifest:
    base = BatchManifest(
        root_path="/data/root",
        relative_path=f"{JOB}/{TASK}/0",
        manifest_file_name="100-manifest.txt",
        data_file_name="100-data.sst",
        byte_sample_file_name="",
        checksum_value=SHA,
        checksum_method="sha256",
        begin_key=b"",
        end_key=b"m",
        version=100,
        total_bytes=10,
        key_count=2,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_parses_and_reproduces_an_fdb_manifest() -> None:
    m = BatchManifest.parse(FDB_STYLE)
    assert (m.begin_key, m.end_key, m.version, m.total_bytes, m.key_count) == (
        b"\x00\xff",
        b"ab\x00",
        812,
        4096,
        12,
    )
    assert (m.checksum_value, m.checksum_method, m.transport_method) == ("", "", 2)
    assert m.manifest_relative_path == f"{JOB}/{TASK}/3/812-manifest.txt"
    assert m.to_text() == FDB_STYLE


def test_our_manifest_exact_text() -> None:
    expected = (
        f"[FormatVersion]: 1, [RootPath]: /data/root, [RelativePath]: {JOB}/{TASK}/0, "
        "[ManifestFileName]: 100-manifest.txt, [DataFileName]: 100-data.sst, [ByteSampleFileName]: , "
        f"[ChecksumValue]: {SHA}, [ChecksumMethod]: sha256, [BeginKey]: , [EndKey]: 6d, [Version]: 100, "
        "[Bytes]: 10, [KeyCount]: 2, [ByteSampleVersion]: 0, [ByteSampleMethod]: hashlittle2, "
        "[ByteSampleFactor]: 250, [ByteSampleOverhead]: 100, [ByteSampleMinimalProbability]: 0.000000, "
        "[loadType]: 1, [TransportMethod]: 1"
    )
    assert batch().to_text() == expected
    assert BatchManifest.parse(expected) == batch()


def test_empty_batch_has_no_data_file_and_no_checksum() -> None:
    m = batch(data_file_name="", checksum_value="", checksum_method="", total_bytes=0, key_count=0)
    assert "[DataFileName]: , [ByteSampleFileName]: , [ChecksumValue]: , [ChecksumMethod]: , " in m.to_text()
    assert BatchManifest.parse(m.to_text()) == m


def replace_field(text: str, name: str, value: str) -> str:
    parts = text.split(", ")
    return ", ".join(f"[{name}]: {value}" if p.startswith(f"[{name}]: ") else p for p in parts)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (FDB_STYLE.rsplit(", ", 1)[0], "19 fields"),
        (replace_field(FDB_STYLE, "FormatVersion", "2"), r"\[FormatVersion\]"),
        (FDB_STYLE.replace("[Bytes]", "[Byte]"), r"\[Bytes\]"),
        (replace_field(FDB_STYLE, "KeyCount", "12x"), r"\[KeyCount\]"),
        (replace_field(FDB_STYLE, "Version", "-1"), r"\[Version\]"),
        (replace_field(FDB_STYLE, "BeginKey", "0g"), r"\[BeginKey\]"),
        (replace_field(FDB_STYLE, "EndKey", "00 ff"), r"\[EndKey\]"),
        (replace_field(FDB_STYLE, "KeyCount", "0"), r"\[Bytes\]"),
        (replace_field(FDB_STYLE, "DataFileName", ""), r"\[DataFileName\]"),
        (replace_field(FDB_STYLE, "RootPath", ""), r"\[RootPath\]"),
        (replace_field(FDB_STYLE, "ChecksumValue", SHA), r"\[ChecksumValue\]"),
        (replace_field(replace_field(FDB_STYLE, "ChecksumValue", "AB"), "ChecksumMethod", "sha256"), "hex"),
        (replace_field(FDB_STYLE, "ByteSampleMinimalProbability", "1.5"), "ByteSampleMinimalProbability"),
        (replace_field(FDB_STYLE, "ByteSampleMethod", ""), r"\[ByteSampleMethod\]"),
        (replace_field(FDB_STYLE, "loadType", "0"), r"\[loadType\]"),
        (replace_field(FDB_STYLE, "TransportMethod", "3"), r"\[TransportMethod\]"),
    ],
)
def test_malformed_batch_manifest(text: str, match: str) -> None:
    with pytest.raises(errors.BulkloadManifestDecodeError, match=match) as info:
        BatchManifest.parse(text)
    assert info.value.code == 1246


def test_bytes_input() -> None:
    assert BatchManifest.parse(FDB_STYLE.encode()) == BatchManifest.parse(FDB_STYLE)
    with pytest.raises(errors.BulkloadManifestDecodeError, match="UTF-8"):
        BatchManifest.parse(b"\xff" + FDB_STYLE.encode())
    with pytest.raises(errors.BulkloadManifestDecodeError, match="UTF-8"):
        list(iter_job_manifest(BytesSource(JOB_TEXT.encode() + b"\xfe\n")))


def test_paths_may_not_escape_the_root() -> None:
    with pytest.raises(errors.BulkloadFilesetInvalidFilepath, match="RelativePath"):
        BatchManifest.parse(replace_field(FDB_STYLE, "RelativePath", "../../etc"))
    with pytest.raises(errors.BulkloadFilesetInvalidFilepath, match="DataFileName"):
        batch(data_file_name="/abs.sst").to_text()


def test_values_with_the_separator_are_refused_on_format() -> None:
    with pytest.raises(errors.BulkloadManifestDecodeError, match="RootPath"):
        batch(root_path="/a, b").to_text()


E1 = JobManifestEntry(b"", b"m", f"{JOB}/{TASK}/0/100-manifest.txt", 100, 10)
E2 = JobManifestEntry(b"m", b"\xff", f"{JOB}/{TASK}/1/120-manifest.txt", 120, 0)
JOB_TEXT = (
    "[FormatVersion]: 1, [ManifestCount]: 2\n"
    f"[BeginKey]: , [EndKey]: 6d, [ManifestRelativePath]: {JOB}/{TASK}/0/100-manifest.txt, [Version]: 100, "
    "[Bytes]: 10\n"
    f"[BeginKey]: 6d, [EndKey]: ff, [ManifestRelativePath]: {JOB}/{TASK}/1/120-manifest.txt, [Version]: 120, "
    "[Bytes]: 0\n"
)


def test_job_manifest_exact_text() -> None:
    assert format_job_manifest([E2, E1]) == JOB_TEXT
    assert JobManifestEntry.of(batch()) == E1


@pytest.mark.parametrize("chunk", [1, 7, 64 * 1024])
def test_job_manifest_parses_across_chunks(chunk: int) -> None:
    text = JOB_TEXT.replace("\n[BeginKey]: 6d", "\n\n[BeginKey]: 6d").rstrip("\n")  # blank line, no final \n
    assert list(iter_job_manifest(BytesSource(text.encode(), "job-manifest.txt"), chunk)) == [E1, E2]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "no header"),
        (JOB_TEXT.replace("[ManifestCount]: 2", "[ManifestCount]: 3"), "3 but the file has 2"),
        (JOB_TEXT.replace("[ManifestCount]: 2", "[ManifestCount]: 0"), "ManifestCount"),
        (JOB_TEXT.replace("[FormatVersion]: 1", "[FormatVersion]: 9"), "FormatVersion"),
        (JOB_TEXT.replace(", [Bytes]: 0", ""), "4 fields, expected 5"),
        (JOB_TEXT.replace("[EndKey]: 6d", "[EndKey]: "), r"\[EndKey\]"),
        (JOB_TEXT.replace("[Version]: 120", "[Version]: x"), r"\[Version\]"),
    ],
)
def test_malformed_job_manifest(text: str, match: str) -> None:
    with pytest.raises(errors.BulkloadManifestDecodeError, match=match):
        parse_job_manifest(text)


def test_coverage() -> None:
    e3 = JobManifestEntry(b"\xff", b"\xff\xff", "j/t/2/130-manifest.txt", 130, 5)
    assert entries_covering([e3, E1, E2], KeyRange(b"a", b"z")) == [E1, E2]
    assert check_contiguous([e3, E2, E1]) == KeyRange(b"", b"\xff\xff")
    with pytest.raises(errors.BulkloadDatasetNotCoverRequiredRange, match="gap"):
        entries_covering([E1, e3], KeyRange(b"", b"\xff\xff"))
    with pytest.raises(errors.BulkloadDatasetNotCoverRequiredRange, match="not all of"):
        entries_covering([E1, E2], KeyRange(b"", b"\xff\xff"))
    with pytest.raises(errors.BulkloadDatasetNotCoverRequiredRange, match="overlap"):
        check_contiguous([E1, JobManifestEntry(b"l", b"\xff", "x", 1, 0)])
    with pytest.raises(errors.BulkloadDatasetNotCoverRequiredRange) as info:
        entries_covering([E2], KeyRange(b"", b"a"))
    assert info.value.code == 1249


names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=20).filter(
    lambda s: ", " not in s and "\n" not in s and not s.startswith("/") and ".." not in s.split("/")
)


@given(
    st.tuples(keys, keys).filter(lambda r: r[0] != r[1]).map(sorted),
    names,
    names,
    st.integers(0, 2**63 - 1),
    st.integers(1, 2**40),
    st.sampled_from([0.0, 0.5, 0.000001, 1.0]),
    st.booleans(),
)
def test_batch_round_trip(
    rng: list[bytes], root: str, rel: str, version: int, count: int, prob: float, sample: bool
) -> None:
    m = batch(
        root_path=root,
        relative_path=rel,
        begin_key=rng[0],
        end_key=rng[1],
        version=version,
        key_count=count,
        total_bytes=count * 3,
        byte_sample_file_name="s.sst" if sample else "",
        byte_sample_minimal_probability=prob,
    )
    assert BatchManifest.parse(m.to_text()) == m


@given(st.lists(keys, min_size=2, max_size=12, unique=True).map(sorted), names)
def test_job_manifest_round_trip(bounds: list[bytes], path: str) -> None:
    entries = [JobManifestEntry(b, e, path, i, i * 7) for i, (b, e) in enumerate(itertools.pairwise(bounds))]
    parsed = parse_job_manifest(format_job_manifest(reversed(entries)))
    assert parsed == entries
    assert check_contiguous(parsed) == KeyRange(bounds[0], bounds[-1])
    assert entries_covering(parsed, KeyRange(bounds[0], bounds[-1])) == entries
