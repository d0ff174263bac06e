"""Turning a transaction's mutations into the writes of one commit.

Three steps, each as FDB does them:

1. :func:`validate` (before the commit lock): mutation types, key and value sizes, the legal key range
   and the transaction size limit.
2. :func:`place_versionstamps` (under the lock, once the commit version is known): versionstamped
   ops become ``SetValue`` with the stamp written in, as the commit proxy does.
3. :func:`resolve` (under the lock): apply the mutations in order against the current state to get
   each written key's final value, the keys the commit changes (for the MVCC window) and its
   write-conflict ranges. Only atomic ops and multi-key clears read the current state.

Mutations travel as three parallel lists (types, first params, second params) so that a batch of
plain sets costs C-level list operations rather than a Python step per key.
"""

from __future__ import annotations

import operator
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import cast

from embedded_cluster.wire import Columns
from fdbcore import errors
from fdbcore.atomic import apply_atomic, check_versionstamp_param, place_versionstamp, versionstamp
from fdbcore.cluster.limits import (
    KEY_SIZE_LIMIT,
    MUTATION_OVERHEAD,
    TRANSACTION_SIZE_LIMIT,
    VALUE_SIZE_LIMIT,
    key_size_limit,
)
from fdbcore.keys import ALL_END, KeyRange, normalize_ranges, printable
from fdbcore.mutations import ATOMIC_TYPES, VERSIONSTAMP_TYPES, MutationType

SET = MutationType.SET_VALUE
CLEAR = MutationType.CLEAR_RANGE
VALID_TYPES = frozenset({SET, CLEAR} | ATOMIC_TYPES)
#: Up to this many keys found in a cleared range are deleted one by one; more get one range tombstone.
POINT_DELETES_MAX = 64
_NOT_SET = re.compile(re.escape(bytes((SET,))).join((b"[^", b"]")))


@dataclass(frozen=True, slots=True)
class Plan:
    """What validation learned about a transaction that the commit path can use."""

    sets_only: bool
    has_versionstamps: bool
    #: Positions of the mutations that are not ``SetValue``, in order.
    others: list[int]


def validate(columns: Columns, read_conflicts: Sequence[KeyRange]) -> Plan:
    types, p1s, p2s = columns
    if not len(types) == len(p1s) == len(p2s):
        raise errors.ClientInvalidOperation("mutation lists differ in length")
    kinds = set(types)
    if not kinds <= VALID_TYPES:
        bad = sorted(kinds - VALID_TYPES)
        raise errors.InvalidMutationType(f"mutation type {bad[0]} cannot be committed")
    size = sum(map(len, p1s)) + sum(map(len, p2s)) + MUTATION_OVERHEAD * len(types)
    size += sum(len(r.begin) + len(r.end) for r in read_conflicts)
    if size > TRANSACTION_SIZE_LIMIT:
        raise errors.TransactionTooLarge(f"transaction is {size} bytes; the limit is {TRANSACTION_SIZE_LIMIT} bytes")
    if kinds == {SET}:
        # The common bulk case, checked with whole-list operations.
        if p1s and max(p1s) >= ALL_END:
            _check_key(max(p1s))
        if p1s and max(map(len, p1s)) > KEY_SIZE_LIMIT:
            for key in p1s:
                _check_key(key)
        if p2s and max(map(len, p2s)) > VALUE_SIZE_LIMIT:
            raise errors.ValueTooLarge(f"a value is larger than {VALUE_SIZE_LIMIT} bytes")
        return Plan(sets_only=True, has_versionstamps=False, others=[])
    others = not_sets(types)
    # When every key and value passes the strictest single-key limits, the sets among the mutations
    # are fine and only the others need their own checks; otherwise every mutation is checked.
    quick = not types or (
        max(p1s) < ALL_END and max(map(len, p1s)) <= KEY_SIZE_LIMIT and max(map(len, p2s)) <= VALUE_SIZE_LIMIT
    )
    for i in others if quick else range(len(types)):
        t, a, b = types[i], p1s[i], p2s[i]
        if t == CLEAR:
            if a > b:
                raise errors.InvertedRange(f"clear_range begin {printable(a)} is after its end {printable(b)}")
            if b > ALL_END:
                raise errors.KeyOutsideLegalRange(f"clear_range end {printable(b)} is past \\xff\\xff")
            continue
        if t == MutationType.SET_VERSIONSTAMPED_KEY:
            check_versionstamp_param(a, "key")
            _check_key(a[:-4])
        else:
            _check_key(a)
        if t == MutationType.SET_VERSIONSTAMPED_VALUE:
            check_versionstamp_param(b, "value")
        if len(b) > VALUE_SIZE_LIMIT:
            raise errors.ValueTooLarge(f"value for {printable(a[:40])} is {len(b)} bytes (limit {VALUE_SIZE_LIMIT})")
    return Plan(sets_only=False, has_versionstamps=bool(kinds & VERSIONSTAMP_TYPES), others=others)


def not_sets(types: list[int]) -> list[int]:
    """The positions of the mutations that are not ``SetValue``, found without a Python step per
    mutation (types are valid, so each fits in a byte)."""
    return [m.start() for m in _NOT_SET.finditer(bytes(types))]


def _check_key(key: bytes) -> None:
    if key >= ALL_END:
        raise errors.KeyOutsideLegalRange(f"key {printable(key[:40])} is outside the legal range ['', \\xff\\xff)")
    if len(key) > key_size_limit(key):
        raise errors.KeyTooLarge(f"key {printable(key[:40])}... is {len(key)} bytes (limit {key_size_limit(key)})")


def place_versionstamps(columns: Columns, version: int) -> Columns:
    """Resolve versionstamped ops to ``SetValue`` (transaction number 0: one transaction per commit)."""
    stamp = versionstamp(version, 0)
    types, p1s, p2s = list(columns[0]), list(columns[1]), list(columns[2])
    for i, t in enumerate(types):
        if t == MutationType.SET_VERSIONSTAMPED_KEY:
            p1s[i] = place_versionstamp(p1s[i], stamp, "key")
            _check_key(p1s[i])
            types[i] = SET
        elif t == MutationType.SET_VERSIONSTAMPED_VALUE:
            p2s[i] = place_versionstamp(p2s[i], stamp, "value")
            types[i] = SET
    return types, p1s, p2s


def mutation_span(columns: Columns) -> tuple[bytes, bytes]:
    """The smallest range holding every key the mutations touch (versionstamps already placed)."""
    types, p1s, p2s = columns
    hi = max(p1s) + b"\x00"
    if CLEAR in types:
        hi = max(hi, *(b for t, b in zip(types, p2s, strict=True) if t == CLEAR))
    return min(p1s), hi


# --- resolving mutations against the current state -----------------------------------------------


@dataclass(slots=True)
class ClearedRange:
    begin: bytes
    end: bytes
    #: Keys present in the range before the commit (all of them when ``complete``), in order.
    found: list[bytes]
    #: Bytes (key plus value) of each of ``found``.
    sizes: list[int]
    #: False when the range held more keys than the limit; ``found`` is then partial.
    complete: bool


@dataclass(slots=True)
class Effects:
    #: Final value of every key a single-key mutation wrote (``None``: cleared).
    puts: dict[bytes, bytes | None]
    #: Values read before the commit (for atomic ops), so byte counts can use them.
    known: dict[bytes, bytes | None] = field(default_factory=dict)
    cleared: list[ClearedRange] = field(default_factory=list)
    #: A commit of nothing but sets of strictly ascending keys (log replay's bulk): those keys and
    #: values, with ``puts`` left empty, since building it would cost a dict insertion per key.
    ascending: tuple[list[bytes], list[bytes]] | None = None

    def changed_keys(self, write_points: list[bytes]) -> list[bytes]:
        """Every key the commit may change, sorted (the MVCC record's key list)."""
        found = [k for c in self.cleared for k in c.found if k not in self.puts]
        # write_points is sorted: sorting it with the few keys found in cleared ranges is one merge
        return sorted(write_points + found) if found else write_points

    def write_points(self) -> list[bytes]:
        if self.ascending is not None:
            return self.ascending[0]
        keys = list(self.puts)
        return keys if _is_sorted(keys) else sorted(keys)

    def write_ranges(self) -> list[tuple[bytes, bytes]]:
        return [(r.begin, r.end) for r in normalize_ranges(KeyRange(c.begin, c.end) for c in self.cleared)]

    def shard_deltas(self, shard_begins: Sequence[bytes], write_points: list[bytes]) -> dict[int, int]:
        """The change in stored bytes (keys plus values) per shard index.

        ``shard_begins`` are the shards' sorted begin keys. Exact for new keys, clears and atomic ops;
        an overwrite by ``set`` counts as new bytes, since reading every old value would double the cost
        of a commit. The shard splitter recounts a shard before splitting it, which corrects the
        overestimate. ``write_points`` is :meth:`write_points` (sorted).
        """
        puts, known = self.puts, self.known

        def index_of(key: bytes) -> int:
            return bisect_right(shard_begins, key) - 1

        if self.ascending is not None or (not self.cleared and not known and None not in puts.values()):
            # The bulk case: cut the sorted keys at shard boundaries and sum each slice at C speed.
            if self.ascending is not None:
                values: Sequence[bytes] = self.ascending[1]  # in the order of write_points
            else:  # no None among the values
                values = list(map(cast("Callable[[bytes], bytes]", puts.__getitem__), write_points))
            sums: dict[int, int] = {}
            lo, n = 0, len(write_points)
            while lo < n:
                i = index_of(write_points[lo])
                hi = bisect_left(write_points, shard_begins[i + 1], lo) if i + 1 < len(shard_begins) else n
                sums[i] = sum(map(len, write_points[lo:hi])) + sum(map(len, values[lo:hi]))
                lo = hi
            return sums
        out: dict[int, int] = {}
        for k, v in puts.items():
            old = known.get(k)
            delta = (len(k) + len(v) if v is not None else 0) - (len(k) + len(old) if old is not None else 0)
            i = index_of(k)
            out[i] = out.get(i, 0) + delta
        for c in self.cleared:
            if c.found and index_of(c.found[0]) == index_of(c.found[-1]):
                i = index_of(c.found[0])
                out[i] = out.get(i, 0) - sum(c.sizes)
                continue
            for k, size in zip(c.found, c.sizes, strict=True):
                i = index_of(k)
                out[i] = out.get(i, 0) - size
        return out


def _is_sorted(keys: list[bytes]) -> bool:
    return all(map(operator.lt, keys, keys[1:]))


#: ``get(key)`` -> the current value; ``scan(begin, end, limit)`` -> up to ``limit`` current pairs.
Get = Callable[[bytes], bytes | None]
Scan = Callable[[bytes, bytes, int], Iterator[tuple[bytes, bytes]]]


def resolve(columns: Columns, plan: Plan, get: Get, scan: Scan, clear_keys_max: int) -> Effects:
    """Apply the mutations in order to get final values; read only what atomic ops and clears need."""
    types, p1s, p2s = columns
    if plan.sets_only:
        if _is_sorted(p1s):
            return Effects(puts={}, ascending=(p1s, p2s))
        return Effects(puts=dict(zip(p1s, p2s, strict=True)))

    puts: dict[bytes, bytes | None] = {}
    known: dict[bytes, bytes | None] = {}  # current (pre-commit) values read for atomic ops
    ranges: list[tuple[bytes, bytes]] = []  # multi-key clears, in order
    done = 0  # mutations before this position are applied
    for i in [*plan.others, len(types)]:
        # the sets up to the next other mutation, at C level; then that mutation
        puts.update(zip(p1s[done:i], p2s[done:i], strict=True))
        if i == len(types):
            break
        done = i + 1
        t, a, b = types[i], p1s[i], p2s[i]
        if t == SET:  # a versionstamped op, resolved to a set after validation
            puts[a] = b
        elif t == CLEAR:
            if b == a + b"\x00":
                puts[a] = None
            elif a < b:
                ranges.append((a, b))
                for k in puts:
                    if a <= k < b:
                        puts[k] = None
        else:
            if a in puts:
                old = puts[a]
            elif any(c0 <= a < c1 for c0, c1 in ranges):
                old = None
            else:
                if a not in known:
                    known[a] = get(a)
                old = known[a]
            puts[a] = apply_atomic(t, old, b)

    cleared = []
    for r in normalize_ranges(KeyRange(a, b) for a, b in ranges):
        found: list[bytes] = []
        sizes: list[int] = []
        complete = True
        for k, v in scan(r.begin, r.end, clear_keys_max + 1):
            if len(found) == clear_keys_max:
                complete = False
                break
            found.append(k)
            sizes.append(len(k) + len(v))
        cleared.append(ClearedRange(r.begin, r.end, found, sizes, complete))
    return Effects(puts=puts, known=known, cleared=cleared)
