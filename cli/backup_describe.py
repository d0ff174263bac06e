"""``fdbbackup describe`` text and JSON, as FDB's ``BackupDescription::toString``/``toJSON`` print them.

Unlike FDB 8.0, ``type=`` is right for BulkDump snapshots (the type comes from the manifest's
content), and the restorable range is also given per snapshot method.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from cli.fdbtext import format_time
from fdbcore.catalog import MUTATION_LOG_PARTITIONED, Description
from fdbcore.formats.properties import EncryptionMetadata
from fdbcore.modes import SnapshotKind

VersionTime = Callable[[int], float | None] | None
_LOG_TYPES = {0: "default", MUTATION_LOG_PARTITIONED: "partitioned-log-experimental"}
_DAY_VERSIONS = 1_000_000 * 24 * 60 * 60


def _version(desc: Description, v: int, version_time: VersionTime) -> str:
    if version_time is not None:
        t = version_time(v)
        return f"{v} ({format_time(t)})" if t is not None else f"{v} (unknown)"
    if desc.max_log_end is not None:
        days = (desc.max_log_end - v) / _DAY_VERSIONS
        return f"{v} (maxLogEnd {'+' if days < 0 else '-'}{abs(days):.2f} days)"
    return str(v)


def _encryption_lines(meta: EncryptionMetadata) -> list[str]:
    return [
        f"File-level encryption: {'true' if meta.enabled else 'false'}",
        f"Encryption block size: {meta.block_size}",
    ]


def _encryption_fields(meta: EncryptionMetadata) -> dict[str, object]:
    return {"FileLevelEncryption": meta.enabled, "EncryptionBlockSize": meta.block_size}


def encryption_text(url: str, meta: EncryptionMetadata) -> str:
    """What ``describe`` can say without the key of an encrypted backup (its properties are plaintext)."""
    return "\n".join([f"URL: {url}", *_encryption_lines(meta)]) + "\n"


def encryption_json(url: str, meta: EncryptionMetadata) -> str:
    return json.dumps({"SchemaVersion": "1.0.0", "URL": url, **_encryption_fields(meta)}, indent=2)


def to_text(desc: Description, version_time: VersionTime = None) -> str:
    lines = [
        f"URL: {desc.url}",
        f"Restorable: {'true' if desc.max_restorable is not None else 'false'}",
        f"Mutation Log Type: {_LOG_TYPES.get(desc.mutation_log_type, str(desc.mutation_log_type))}",
        *_encryption_lines(desc.encryption),
    ]
    for s in desc.snapshots:
        lines.append(
            f"Snapshot:  type={s.kind.value}  startVersion={_version(desc, s.begin_version, version_time)}"
            f"  endVersion={_version(desc, s.end_version, version_time)}  totalBytes={s.total_bytes}"
            f"  restorable={'true' if s.restorable else 'false'}  expiredPct={s.expired_pct(desc.expired_end):.2f}"
        )
        if s.damage is not None:  # describe --deep found a file missing
            lines.append(f"  Damaged: {s.damage}")
    lines.append(f"SnapshotBytes: {desc.snapshot_bytes}")
    for label, value in (
        ("ExpiredEndVersion:      ", desc.expired_end),
        ("UnreliableEndVersion:   ", desc.unreliable_end),
        ("MinLogBeginVersion:     ", desc.min_log_begin),
        ("ContiguousLogEndVersion:", desc.contiguous_log_end),
        ("MaxLogEndVersion:       ", desc.max_log_end),
        ("MinRestorableVersion:   ", desc.min_restorable),
        ("MaxRestorableVersion:   ", desc.max_restorable),
    ):
        if value is not None:
            lines.append(f"{label} {_version(desc, value, version_time)}{_method_note(desc, label, value)}")
    for kind in SnapshotKind:
        span = desc.restorable_range(kind)
        if span is not None:
            method = "bulkload" if kind == SnapshotKind.BULKDUMP else "rangefile"
            lines.append(f"RestorableWith --mode {method}: {span[0]} .. {span[1]}")
    return "\n".join(lines) + "\n"


def _method_note(desc: Description, label: str, value: int) -> str:
    """MinRestorableVersion counts every snapshot; say when BulkLoad cannot restore to it (mode both)."""
    bulk = desc.restorable_range(SnapshotKind.BULKDUMP)
    if not label.startswith("MinRestorable") or bulk is None or bulk[0] == value:
        return ""
    return f"  (range files only; --mode bulkload restores from {bulk[0]})"


def to_json(desc: Description, version_time: VersionTime = None) -> str:
    def version(v: int) -> dict[str, object]:
        doc: dict[str, object] = {"Version": v}
        if version_time is not None:
            t = version_time(v)
            if t is not None:
                doc["Timestamp"] = format_time(t)
                doc["EpochSeconds"] = int(t)
        elif desc.max_log_end is not None:
            doc["RelativeDays"] = (v - desc.max_log_end) / _DAY_VERSIONS
        return doc

    doc: dict[str, object] = {
        "SchemaVersion": "1.0.0",
        "URL": desc.url,
        "Restorable": desc.max_restorable is not None,
        "MutationLogType": _LOG_TYPES.get(desc.mutation_log_type, str(desc.mutation_log_type)),
        **_encryption_fields(desc.encryption),
        "Snapshots": [
            {
                "Type": s.kind.value,
                "Start": version(s.begin_version),
                "End": version(s.end_version),
                "Restorable": s.restorable,
                "TotalBytes": s.total_bytes,
                "PercentageExpired": s.expired_pct(desc.expired_end),
                **({"Damaged": s.damage} if s.damage is not None else {}),
            }
            for s in desc.snapshots
        ],
        "TotalSnapshotBytes": desc.snapshot_bytes,
    }
    for key, value in (
        ("ExpiredEnd", desc.expired_end),
        ("UnreliableEnd", desc.unreliable_end),
        ("MinLogBegin", desc.min_log_begin),
        ("ContiguousLogEnd", desc.contiguous_log_end),
        ("MaxLogEnd", desc.max_log_end),
        ("MinRestorablePoint", desc.min_restorable),
        ("MaxRestorablePoint", desc.max_restorable),
    ):
        if value is not None:
            doc[key] = version(value)
    return json.dumps(doc, indent=2)
