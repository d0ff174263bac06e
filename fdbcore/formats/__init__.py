"""Byte-compatible encoders and decoders for FoundationDB 7.4/8.0 backup files.

Everything streams: writers hand whole blocks to any ``write(bytes)`` sink, readers pull one block at
a time from a :class:`~fdbcore.formats.io.ByteSource`.

- :mod:`.rangefile` -- KV snapshot files (``kvranges/``), header 1001
- :mod:`.partitioned_log` -- V2 mutation logs (``plogs/``), header 4110
- :mod:`.v1_log` -- V1 mutation logs (``logs/``), header 2001
- :mod:`.snapshot_manifest` -- ``snapshots/snapshot,...`` JSON, range-file and BulkDump kinds
- :mod:`.bulkdump_manifest` -- BulkDump batch and job manifests (text)
- :mod:`.sst` -- BulkDump SST data files, written and read with corruption checks
- :mod:`.properties` -- ``properties/*`` version numbers and encryption metadata
- shared: :mod:`.io`, :mod:`.framing` (block headers, padding), :mod:`.mutation_codec`,
  :mod:`.lookup3`, :mod:`.crc32c`
"""
