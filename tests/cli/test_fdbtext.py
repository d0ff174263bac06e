"""The text helpers must print exactly what FDB prints (values from FDB's own unit tests and code)."""

from cli import exit_codes, fdbtext
from fdbcore import errors


def test_bytes_human_matches_fdb() -> None:
    assert fdbtext.format_bytes_human(1099511627776) == "1.00 TB"
    assert fdbtext.format_bytes_human(1649267441664) == "1.50 TB"
    assert fdbtext.format_bytes_human(1073741824) == "1.00 GB"
    assert fdbtext.format_bytes_human(1048576 * 3 // 2) == "1.50 MB"
    assert fdbtext.format_bytes_human(1023) == "1023 bytes"
    assert fdbtext.format_bytes_human(2048) == "2.00 KB"


def test_durations_and_progress() -> None:
    assert fdbtext.format_duration_human(59) == "59 seconds"
    assert fdbtext.format_duration_human(61) == "1 minutes"
    assert fdbtext.format_duration_human(3600) == "1 hours"
    assert fdbtext.format_duration_human(9000) == "2 hours 30 minutes"
    assert fdbtext.format_bytes_progress(1024, 2048) == "1024 (1.00 KB) / 2048 (2.00 KB)"
    assert fdbtext.format_bytes_progress(5, None) == "5 (5 bytes)"
    assert fdbtext.seconds_to_time_format(30) == "30 second(s)"
    assert fdbtext.seconds_to_time_format(90) == "1.50 minute(s)"
    assert fdbtext.seconds_to_time_format(2 * 86400) == "2.00 day(s)"
    assert fdbtext.format_time(None) == "N/A"
    assert fdbtext.version_to_string(None) == "N/A"


def test_exit_codes_by_error_class() -> None:
    assert exit_codes.exit_code_for(errors.BackupInvalidUrl("x")) == exit_codes.USAGE
    assert exit_codes.exit_code_for(errors.BackupDuplicate("x")) == exit_codes.CONFLICT
    assert exit_codes.exit_code_for(errors.RestoreBulkloadDatasetIncomplete("x")) == exit_codes.INTEGRITY
    assert exit_codes.exit_code_for(errors.BulkloadInvalidConfiguration("x")) == exit_codes.CONFIGURATION
    assert exit_codes.exit_code_for(errors.ConnectionFailed("x")) == exit_codes.UNAVAILABLE
    assert exit_codes.exit_code_for(errors.BackupDoesNotExist("x")) == exit_codes.NOT_FOUND
    assert exit_codes.exit_code_for(RuntimeError("x")) == exit_codes.FAILED
    # every category has a code
    for cls in errors.all_errors().values():
        assert exit_codes.exit_code_for(cls("x")) > 0
