from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from fdbcore.logcoverage import (
    chain_end,
    drop_subset_duplicates,
    partitioned_continuous_end,
    v1_chain,
)


@dataclass(frozen=True)
class F:
    begin: int
    end: int
    tag: int | None = None
    total_tags: int | None = None


def plog(b: int, e: int, tag: int, total: int = 2) -> F:
    return F(b, e, tag, total)


def test_v1_chain_follows_exact_links() -> None:
    files = [F(0, 10), F(10, 20), F(20, 30), F(15, 25)]
    assert v1_chain(files, 5, 15) == ([F(0, 10), F(10, 20)], 20)
    assert v1_chain(files, 5) == ([F(0, 10), F(10, 20), F(20, 30)], 30)
    assert v1_chain([F(10, 20)], 5) is None  # nothing covers the begin


def test_chain_allows_overlap_and_stops_at_gap() -> None:
    assert chain_end([F(0, 10), F(5, 20), F(20, 25), F(30, 40)], 3) == 25
    assert chain_end([F(4, 10)], 3) is None
    assert chain_end([F(0, 3), F(3, 9)], 3) == 9


def test_subset_duplicates_are_dropped_per_tag() -> None:
    files = [plog(0, 10, 0), plog(0, 15, 0), plog(0, 10, 1), plog(3, 8, 1), plog(10, 20, 1)]
    kept = drop_subset_duplicates(files)
    assert sorted((f.begin, f.end, f.tag) for f in kept) == [(0, 10, 1), (0, 15, 0), (10, 20, 1)]


def test_every_tag_must_be_continuous() -> None:
    files = [plog(0, 10, 0), plog(10, 20, 0), plog(0, 10, 1), plog(10, 15, 1)]
    assert partitioned_continuous_end(files, 0) == 15
    assert partitioned_continuous_end(files, 12) == 15
    assert partitioned_continuous_end(files, 15) is None  # tag 1 has nothing from 15
    missing_tag = [plog(0, 10, 0)]
    assert partitioned_continuous_end(missing_tag, 0) is None


def test_tag_count_changes_between_epochs() -> None:
    # epoch 1 (v 0..10): 2 tags; epoch 2 (v 10..20): 3 tags
    files = [
        plog(0, 10, 0, 2),
        plog(0, 10, 1, 2),
        plog(10, 20, 0, 3),
        plog(10, 20, 1, 3),
        plog(10, 18, 2, 3),
    ]
    assert partitioned_continuous_end(files, 0) == 18


@given(st.lists(st.integers(1, 5), min_size=1, max_size=10), st.integers(1, 4))
def test_contiguous_files_cover_their_union(lengths: list[int], tags: int) -> None:
    files = []
    for tag in range(tags):
        v = 0
        for n in lengths:
            files.append(plog(v, v + n, tag, tags))
            v += n
    assert partitioned_continuous_end(files, 0) == sum(lengths)
