"""Which versions a set of mutation-log files covers without gaps.

Rules (FDB's ``BackupContainerFileSystem``): a log file covers versions ``[begin, end)``.

- V1 logs (``logs/``) form one chain: each next file starts where the previous ended.
- Partitioned logs (``plogs/``) form one chain per tag; a chain may overlap itself (a retried
  upload can rewrite a longer file from the same begin), and a file that is a subset of another
  file of the same tag is a duplicate. Every tag ``0 .. total_tags - 1`` must be continuous.
  ``total_tags`` can change between epochs; tag 0's files say which count holds when.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol, TypeVar


class LogSpan(Protocol):
    @property
    def begin(self) -> int: ...

    @property
    def end(self) -> int: ...

    @property
    def tag(self) -> int | None: ...

    @property
    def total_tags(self) -> int | None: ...


L = TypeVar("L", bound=LogSpan)


def drop_subset_duplicates(files: Sequence[L]) -> list[L]:
    """Per tag, drop files whose span lies inside another file's span; result sorted by version."""
    by_tag: dict[int | None, list[L]] = defaultdict(list)
    for f in files:
        by_tag[f.tag].append(f)
    kept: list[L] = []
    for group in by_tag.values():
        # Longest first among equal begins, so a later file is a subset iff its end <= the max end so far.
        group.sort(key=lambda f: (f.begin, -f.end))
        max_end = None
        for f in group:
            if max_end is not None and f.end <= max_end:
                continue
            kept.append(f)
            max_end = f.end
    kept.sort(key=lambda f: (f.begin, f.end, f.tag or 0))
    return kept


def chain_end(files: Sequence[L], begin: int) -> int | None:
    """Exclusive end of the unbroken coverage of one chain starting at ``begin``, or None.

    ``files`` must be sorted by begin. Overlaps are allowed; a gap ends the chain.
    """
    end: int | None = None
    for f in files:
        if end is None:
            if f.begin > begin:
                return None
            if f.end > begin:
                end = f.end
        elif f.begin > end:
            break
        else:
            end = max(end, f.end)
    return end


def v1_chain(files: Sequence[L], begin: int, target: int | None = None) -> tuple[list[L], int] | None:
    """The V1 chain from ``begin``: its files and exclusive end; None when no file contains ``begin``.

    Like FDB: start with a file containing ``begin`` and follow files whose begin equals the previous
    end, stopping once the chain passes ``target`` (when given). The caller checks ``end > target``.
    """
    ordered = sorted(files, key=lambda f: (f.begin, f.end))
    chain: list[L] = []
    end: int | None = None
    for f in ordered:
        if end is None:
            if f.begin <= begin < f.end:
                chain.append(f)
                end = f.end
        elif f.begin == end:
            chain.append(f)
            end = f.end
        if end is not None and target is not None and end > target:
            break
    return None if end is None else (chain, end)


def partitioned_continuous_end(files: Sequence[L], begin: int) -> int | None:
    """Exclusive end E such that every tag covers ``[begin, E)``; None when ``begin`` is not covered."""
    by_tag: dict[int, list[L]] = defaultdict(list)
    for f in sorted(drop_subset_duplicates(files), key=lambda f: (f.begin, f.end)):
        by_tag[f.tag or 0].append(f)
    epochs = _tag0_epochs(by_tag.get(0, []), begin)
    if not epochs:
        return None
    covered = begin
    for start, stop, total in epochs:
        end = stop
        for tag in range(1, total):
            tag_end = chain_end(by_tag.get(tag, []), start)
            if tag_end is None:
                return covered if covered > begin else None
            end = min(end, tag_end)
        if end < stop:
            return end if end > begin else None
        covered = stop
    return covered


def _tag0_epochs(tag0: Sequence[L], begin: int) -> list[tuple[int, int, int]]:
    """Tag 0's continuous coverage from ``begin`` as ``(start, stop, total_tags)`` epochs."""
    epochs: list[tuple[int, int, int]] = []
    end: int | None = None
    for f in tag0:
        total = f.total_tags or 1
        if end is None:
            if f.begin > begin:
                return []
            if f.end <= begin:
                continue
            epochs.append((begin, f.end, total))
            end = f.end
            continue
        if f.begin > end:
            break
        if f.end <= end:
            continue
        start, _, cur_total = epochs[-1]
        if total == cur_total:
            epochs[-1] = (start, f.end, total)
        else:
            epochs[-1] = (start, max(start, f.begin), cur_total)
            epochs.append((f.begin, f.end, total))
        end = f.end
    return [e for e in epochs if e[1] > e[0]]
