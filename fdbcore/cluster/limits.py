"""FDB's size limits on keys, values and transactions (``fdbclient/ClientKnobs.cpp``).

Drivers enforce them on commit; clients that batch writes (restore, the load generator) size their
transactions against :data:`TRANSACTION_SIZE_LIMIT`.
"""

from __future__ import annotations

from fdbcore.keys import SYSTEM_PREFIX

#: ``KEY_SIZE_LIMIT``: user keys.
KEY_SIZE_LIMIT = 10_000
#: ``SYSTEM_KEY_SIZE_LIMIT``: keys under ``\xff``.
SYSTEM_KEY_SIZE_LIMIT = 30_000
#: ``VALUE_SIZE_LIMIT``.
VALUE_SIZE_LIMIT = 100_000
#: ``TRANSACTION_SIZE_LIMIT``: mutations plus conflict ranges of one commit.
TRANSACTION_SIZE_LIMIT = 10_000_000
#: Bytes FDB counts for each mutation besides its two parameters.
MUTATION_OVERHEAD = 12


def key_size_limit(key: bytes) -> int:
    return SYSTEM_KEY_SIZE_LIMIT if key.startswith(SYSTEM_PREFIX) else KEY_SIZE_LIMIT
