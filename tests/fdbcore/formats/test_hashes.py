from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fdbcore.formats.crc32c import crc32c
from fdbcore.formats.lookup3 import hashlittle, hashlittle2
from tests.fdbcore.formats.handmade import hashlittle_of_word

FOUR_SCORE = b"Four score and seven years ago"


@pytest.mark.parametrize(
    ("key", "pc", "pb", "expected"),
    [  # the self-test vectors published with lookup3.c (driver5)
        (b"", 0, 0, (0xDEADBEEF, 0xDEADBEEF)),
        (b"", 0, 0xDEADBEEF, (0xBD5B7DDE, 0xDEADBEEF)),
        (b"", 0xDEADBEEF, 0xDEADBEEF, (0x9C093CCD, 0xBD5B7DDE)),
        (FOUR_SCORE, 0, 0, (0x17770551, 0xCE7226E6)),
        (FOUR_SCORE, 0, 1, (0xE3607CAE, 0xBD371DE4)),
        (FOUR_SCORE, 1, 0, (0xCD628161, 0x6CBEA4B3)),
    ],
)
def test_hashlittle2_published_vectors(key: bytes, pc: int, pb: int, expected: tuple[int, int]) -> None:
    assert hashlittle2(key, pc, pb) == expected


def test_hashlittle_published_vectors() -> None:
    assert hashlittle(b"") == 0xDEADBEEF
    assert hashlittle(FOUR_SCORE) == 0x17770551
    assert hashlittle(FOUR_SCORE, 1) == 0xCD628161


@given(st.integers(0, 2**32 - 1))
def test_hashlittle_of_four_bytes_matches_the_spec_recipe(word: int) -> None:
    assert hashlittle(struct.pack("<I", word)) == hashlittle_of_word(word)


@given(st.binary(max_size=40))
def test_hashlittle_is_hashlittle2_first_result(key: bytes) -> None:
    assert hashlittle(key, 7) == hashlittle2(key, 7, 0)[0]


def test_crc32c_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4: 32 bytes of zeros


@given(st.binary(), st.binary(), st.integers(0, 255))
def test_crc32c_appends(a: bytes, b: bytes, seed: int) -> None:
    assert crc32c(b, crc32c(a, seed)) == crc32c(a + b, seed)
