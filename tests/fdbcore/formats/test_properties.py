from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fdbcore import errors
from fdbcore.formats.properties import (
    EncryptionMetadata,
    format_version_property,
    parse_encryption_metadata,
    parse_version_property,
)


def test_version_property_is_a_bare_decimal() -> None:
    assert format_version_property(78655645) == b"78655645"
    assert parse_version_property(b"78655645") == 78655645
    assert parse_version_property(b"-1") == -1
    assert parse_version_property(b" 12") == 12  # sscanf skips leading whitespace


@pytest.mark.parametrize("data", [b"", b"12\n", b"12 ", b"1.5", b"abc", b"9223372036854775808", b"1 2"])
def test_version_property_must_be_one_int64(data: bytes) -> None:
    with pytest.raises(errors.BackupInvalidInfo):
        parse_version_property(data, "properties/log_end_version")


@given(st.integers(-(2**63), 2**63 - 1))
def test_version_property_round_trip(v: int) -> None:
    assert parse_version_property(format_version_property(v)) == v


def test_inconsistent_metadata_cannot_be_built() -> None:
    with pytest.raises(errors.InvalidOptionValue):
        EncryptionMetadata(True, 0)


def test_encryption_metadata_exact_text() -> None:
    assert EncryptionMetadata().to_json() == b'{"is_encryption_enabled":false,"encryption_block_size":0}'
    assert EncryptionMetadata(True, 1048576).to_json() == (
        b'{"is_encryption_enabled":true,"encryption_block_size":1048576}'
    )
    assert parse_encryption_metadata(EncryptionMetadata(True, 4096).to_json()) == EncryptionMetadata(True, 4096)
    assert parse_encryption_metadata(b'{"encryption_block_size":0, "is_encryption_enabled":false}') == (
        EncryptionMetadata()
    )


def test_encrypted_backups_record_the_tagged_format_version() -> None:
    """FDB's planned format-version property (#13751): 2 = blocks with GCM tags; absent = written before."""
    tagged = EncryptionMetadata(True, 1048576, 2)
    assert tagged.to_json() == b'{"is_encryption_enabled":true,"encryption_block_size":1048576,"format_version":2}'
    assert parse_encryption_metadata(tagged.to_json()) == tagged
    assert (
        parse_encryption_metadata(b'{"is_encryption_enabled":true,"encryption_block_size":4096}').format_version is None
    )


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"is_encryption_enabled":false}',
        b'{"is_encryption_enabled":0,"encryption_block_size":0}',
        b'{"is_encryption_enabled":false,"encryption_block_size":"0"}',
        b'{"is_encryption_enabled":false,"encryption_block_size":1.0}',
        b'{"is_encryption_enabled":false,"encryption_block_size":4096}',
        b'{"is_encryption_enabled":true,"encryption_block_size":0}',
        b'{"is_encryption_enabled":true,"encryption_block_size":4294967296}',
        b'{"is_encryption_enabled":true,"encryption_block_size":4096,"format_version":"2"}',
        b'{"is_encryption_enabled":false,"encryption_block_size":0,"format_version":2}',
    ],
)
def test_encryption_metadata_validation(data: bytes) -> None:
    with pytest.raises(errors.FileCorrupt):
        parse_encryption_metadata(data)
