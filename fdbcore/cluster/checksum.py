"""The content digest of a key range, as ``embedded-cluster checksum`` prints it.

SHA-256 over, for each key in order, 4-byte big-endian ``len(key)``, key, 4-byte big-endian
``len(value)``, value. Two clusters (or a cluster and a backup) hold the same range exactly when key
count, byte count and digest agree.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

_LEN = struct.Struct(">I")


class RangeDigest:
    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.keys = 0
        self.bytes = 0

    def update(self, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        update, pack = self._sha.update, _LEN.pack
        for key, value in pairs:
            update(pack(len(key)))
            update(key)
            update(pack(len(value)))
            update(value)
            self.keys += 1
            self.bytes += len(key) + len(value)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()
