"""fdbbackup's messages and refusals, as FDB prints them (no agent is running in these tests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.fixtures.cluster import EmbeddedCluster
from tests.fixtures.fleet import Fleet


def test_submit_without_agents_duplicate_tag_abort_and_status(
    embedded_cluster: EmbeddedCluster, fleet: Fleet, tmp_path: Path
) -> None:
    cf = str(embedded_cluster.cluster_file)
    url = f"file://{tmp_path}/b"
    first = fleet.run(["fdbbackup", "start", "-C", cf, "-d", url])
    assert first.returncode == 0
    assert first.stdout == (
        "The backup on tag `default' was successfully submitted but no backup agents are responding.\n"
    )
    again = fleet.run(["fdbbackup", "start", "-C", cf, "-d", url, "--mode", "both"])
    assert again.returncode == 5
    assert again.stderr == "ERROR: A backup is already running on tag `default' (backup_duplicate, 2311)\n"
    status = fleet.run(["fdbbackup", "status", "-C", cf])
    assert status.stdout.startswith("The backup on tag `default' is in progress (just started) to file://")
    assert fleet.run(["fdbbackup", "tags"]).stdout.startswith("default  submitted  file://")
    aborted = fleet.run(["fdbbackup", "abort", "-C", cf])
    assert aborted.stdout == "The backup on tag `default' was successfully aborted.\n"
    status = fleet.run(["fdbbackup", "status", "-C", cf]).stdout.splitlines()
    assert status[0].startswith("The previous backup on tag `default' at file://") and status[0].endswith(
        " has been aborted."
    )
    assert status[1].startswith("BackupUID: ") and status[2].startswith("BackupURL: file://")
    assert status[3] == "Snapshot Mode: rangefile"
    again = fleet.run(["fdbbackup", "abort", "-C", cf])
    assert again.returncode == 5 and "A backup was not running on tag `default'" in again.stderr
    none = fleet.run(["fdbbackup", "status", "-C", cf, "-t", "other"])
    assert none.stdout == "No previous backups found on tag 'other'.\nUse 'fdbbackup tags' to list all backup tags.\n"


def test_bad_input_is_named(
    embedded_cluster_factory: Callable[..., EmbeddedCluster], fleet: Fleet, tmp_path: Path
) -> None:
    cf = str(embedded_cluster_factory().cluster_file)
    cases = {
        ("--mode", "fast"): (2, "ERROR: Unknown snapshot mode 'fast'. Valid modes are: rangefile, bulkdump, both"),
        ("-k", "b a"): (2, "inverted_range, 2005"),
        ("-k", "a b \\xff\\x01 \\xff\\x02"): (2, "key_outside_legal_range, 2004"),
    }
    for extra, (code, text) in cases.items():
        res = fleet.run(["fdbbackup", "start", "-C", cf, "-d", f"file://{tmp_path}/b", *extra])
        assert res.returncode == code and text in res.stderr, (extra, res.stderr)
    bad_url = fleet.run(["fdbbackup", "start", "-C", cf, "-d", "blobstore://host/name?region=x"])
    assert bad_url.returncode == 2 and "bucket_not_in_url, 2322" in bad_url.stderr
    relative = fleet.run(["fdbbackup", "start", "-C", cf, "-d", "file://relative/path"])
    assert relative.returncode == 2 and "backup_invalid_url, 2314" in relative.stderr
    missing = fleet.run(["fdbbackup", "describe", "-d", f"file://{tmp_path}/nothing"])
    assert missing.returncode == 4 and "backup_does_not_exist, 2319" in missing.stderr
    no_cluster = fleet.run(["fdbbackup", "start", "-C", str(tmp_path / "none.cluster"), "-d", f"file://{tmp_path}/b"])
    assert no_cluster.returncode == 8 and "no_cluster_file_found, 1515" in no_cluster.stderr
    assert fleet.run(["fdbbackup", "tags"]).stdout == ""  # nothing was submitted
