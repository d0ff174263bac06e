"""Driver-generic helpers of the contract suite, used by the embedded cluster's own tests too: reading
whole ranges and logs, a background writer."""

from __future__ import annotations

import threading

from fdbcore.cluster.checksum import RangeDigest
from fdbcore.cluster.interface import ClusterDriver, LoggedMutation
from fdbcore.mutations import clear_range, set_value


def read_all(db: ClusterDriver, begin: bytes, end: bytes, version: int, chunk: int = 0) -> list[tuple[bytes, bytes]]:
    """Every pair of ``[begin, end)`` at ``version``, read in chunks of ``chunk`` keys (0: by bytes)."""
    out: list[tuple[bytes, bytes]] = []
    cursor = begin
    while True:
        r = db.get_range(cursor, end, version, limit=chunk)
        out.extend(r.kvs)
        if not r.more:
            return out
        cursor = r.kvs[-1][0] + b"\x00"


def digest_at(db: ClusterDriver, begin: bytes, end: bytes, version: int) -> tuple[int, int, str]:
    """(keys, bytes, sha256) of ``[begin, end)`` at ``version``, as ``embedded-cluster checksum`` has it."""
    d = RangeDigest()
    d.update(read_all(db, begin, end, version))
    return d.keys, d.bytes, d.hexdigest()


def drain(db: ClusterDriver, capture: str, begin: int, limit_bytes: int = 0) -> tuple[list[LoggedMutation], int]:
    """Every retained mutation of ``capture`` from ``begin``, and the end version reached."""
    out: list[LoggedMutation] = []
    while True:
        batch = db.read_log(capture, begin, limit_bytes=limit_bytes)
        out.extend(batch.mutations)
        if not batch.mutations:
            return out, batch.end_version
        begin = batch.end_version


class Writer:
    """Commits a steady mix of sets and clear ranges (each commit changes many keys at once)."""

    def __init__(self, db) -> None:
        self.db = db
        self.stop = threading.Event()
        self.commits = 0
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            self.db.commit([set_value(b"w/%05d" % ((i * 131 + j) % 6000), b"%d" % i * 20) for j in range(200)])
            self.db.commit([clear_range(b"w/%05d" % (i * 97 % 6000), b"w/%05d" % (i * 97 % 6000 + 40))])
            self.commits += 2
            i += 1

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
