"""Container URLs: every form and parameter alias FDB accepts, named errors, and redaction."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest

from fdbcore.container import open_container
from fdbcore.container.credentials import Credentials
from fdbcore.container.url import (
    BlobKnobs,
    BlobstoreUrl,
    FileUrl,
    guess_region,
    parse_blobstore_url,
    parse_url,
    redact_url,
    start_backup_url,
    without_secret,
)
from fdbcore.errors import BackupInvalidUrl, BucketNotInUrl, FDBError

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLETOKEN"

# Every numeric knob FDB's BlobKnobs::set accepts: long name and alias (fdbclient/BlobStoreCommon.cpp).
FDB_KNOBS = {
    "secure_connection": "sc",
    "connect_tries": "ct",
    "connect_timeout": "cto",
    "max_connection_life": "mcl",
    "request_tries": "rt",
    "request_timeout_min": "rtom",
    "requests_per_second": "rps",
    "list_requests_per_second": "lrps",
    "write_requests_per_second": "wrps",
    "read_requests_per_second": "rrps",
    "delete_requests_per_second": "drps",
    "concurrent_requests": "cr",
    "multipart_max_part_size": "maxps",
    "multipart_min_part_size": "minps",
    "multipart_retry_delay_ms": "mrd",
    "concurrent_uploads": "cu",
    "concurrent_lists": "cl",
    "concurrent_reads_per_file": "crpf",
    "concurrent_writes_per_file": "cwpf",
    "enable_read_cache": "erc",
    "read_block_size": "rbs",
    "read_ahead_blocks": "rab",
    "read_cache_blocks_per_file": "rcb",
    "max_send_bytes_per_second": "sbps",
    "max_recv_bytes_per_second": "rbps",
    "max_delay_retryable_error": "dre",
    "max_delay_connection_failed": "dcf",
    "sdk_auth": "sa",
    "enable_object_integrity_check": "eoic",
    "global_connection_pool": "gcp",
}
USED = {f.name for f in BlobKnobs.__dataclass_fields__.values()}


def _blob(query: str = "bucket=b", auth: str = "", host: str = "127.0.0.1:9000", name: str = "bk") -> BlobstoreUrl:
    return parse_blobstore_url(f"blobstore://{auth}@{host}/{name}?{query}")


def test_file_urls() -> None:
    assert parse_url("file:///var/backups/x") == FileUrl("/var/backups/x")
    assert parse_url("file:///var/backups/x///") == FileUrl("/var/backups/x")
    assert str(parse_url("file:///var/backups/x/")) == "file:///var/backups/x"


@pytest.mark.parametrize(
    "url", ["file://relative/path", "file://", "file:///", "file:///a/../b", "file:///a/./b", "file:///a//b"]
)
def test_bad_file_urls(url: str) -> None:
    with pytest.raises(BackupInvalidUrl) as info:
        parse_url(url)
    assert info.value.code == 2314


@pytest.mark.parametrize("url", ["s3://bucket/x", "azure://acct/container", "/just/a/path", ""])
def test_unsupported_schemes(url: str) -> None:
    with pytest.raises(BackupInvalidUrl):
        parse_url(url)


def test_full_blobstore_url() -> None:
    u = parse_blobstore_url(
        f"blobstore://AKID:{SECRET}:{TOKEN}@s3.us-west-2.amazonaws.com:443/team/nightly_1.x-y"
        "?bucket=backups&region=eu-central-1&sc=1"
    )
    assert (u.host, u.port, u.name, u.bucket, u.region) == (
        "s3.us-west-2.amazonaws.com",
        443,
        "team/nightly_1.x-y",
        "backups",
        "eu-central-1",
    )
    assert u.credentials == Credentials("AKID", SECRET, TOKEN)
    assert u.endpoint_url == "https://s3.us-west-2.amazonaws.com:443"
    assert not u.virtual_hosted


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ("", Credentials("")),  # "@host": key and secret from a credentials file
        ("AKID", Credentials("AKID")),  # secret from the file's AKID@host account
        (f"AKID:{SECRET}", Credentials("AKID", SECRET)),
        (f"AKID:{SECRET}:{TOKEN}", Credentials("AKID", SECRET, TOKEN)),
        (f"AKID:{SECRET}:tok:with:colons", Credentials("AKID", SECRET, "tok:with:colons")),
    ],
)
def test_credential_forms(auth: str, expected: Credentials) -> None:
    assert _blob(auth=auth).credentials == expected


def test_url_without_at_has_no_credentials() -> None:
    u = parse_blobstore_url("blobstore://127.0.0.1:9000/bk?bucket=b")
    assert u.credentials is None
    assert u.port == 9000


def test_defaults() -> None:
    u = _blob(host="localhost")
    assert u.port is None
    assert u.region == "us-east-1"
    assert u.provider == "s3"
    assert u.knobs == BlobKnobs()
    assert u.knobs.secure_connection == 1
    assert u.endpoint_url == "https://localhost"
    assert u.headers == () and u.ignored_params == ()


@pytest.mark.parametrize(("long", "short"), sorted(FDB_KNOBS.items()))
def test_every_fdb_knob_and_alias_is_accepted(long: str, short: str) -> None:
    value = 1 if long in ("secure_connection", "sdk_auth") else 7
    for name in (long, short):
        u = _blob(f"bucket=b&{name}={value}")
        if long in USED:
            assert getattr(u.knobs, long) == value
            assert u.ignored_params == ()
        else:
            assert u.ignored_params == ((long, str(value)),)


@pytest.mark.parametrize("name", ["rtom", "rto", "request_timeout"])
def test_request_timeout_aliases(name: str) -> None:
    assert _blob(f"bucket=b&{name}=33").knobs.request_timeout_min == 33


def test_knobs_used_for_boto3() -> None:
    u = _blob("bucket=b&sc=0&rt=3&cto=4&rtom=5&minps=6000000&maxps=7000000&cu=8&crpf=9&sa=1")
    assert u.knobs == BlobKnobs(0, 3, 4, 5, 6_000_000, 7_000_000, 8, 9, 1)
    assert u.endpoint_url == "http://127.0.0.1:9000"


def test_special_parameters() -> None:
    u = _blob("bucket=b&header=x-a:1&header=x-b:two:parts&header=x-a:3&p=gcs&gcspid=proj&region=r1")
    assert u.headers == (("x-a", "1,3"), ("x-b", "two:parts"))
    assert u.provider == "gcs"
    assert u.ignored_params == (("gcs_project_id", "proj"),)
    assert u.region == "r1"
    assert _blob("bucket=b&provider=s3&gcs_project_id=p").provider == "s3"


def test_html_escaped_ampersands_are_decoded() -> None:
    u = _blob("bucket=b&amp;rt=3&amp;amp;cto=4")
    assert (u.bucket, u.knobs.request_tries, u.knobs.connect_timeout) == ("b", 3, 4)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("bucket=b&nonsense=1", "unknown URL parameter 'nonsense'"),
        ("bucket=b&rt=abc", "'abc' is not a valid value for rt"),
        ("bucket=b&rt=", "'' is not a valid value for rt"),
        ("bucket=b&rt=1.5", "not a valid value"),
        ("bucket=b&rps=99999999999999999999", "not a valid value"),
        ("bucket=b&rt=0", "out of range"),
        ("bucket=b&sc=2", "out of range"),
        ("bucket=b&rt", "has no value"),
        ("bucket=b&header=x-a", "header parameter"),
        ("bucket=b&header=:v", "header parameter"),
        ("bucket=b&header=x-a:", "header parameter"),
        ("bucket=b&provider=azure", "provider 'azure'"),
    ],
)
def test_bad_parameters_are_named(query: str, message: str) -> None:
    with pytest.raises(BackupInvalidUrl, match=message) as info:
        _blob(query)
    assert info.value.code == 2314


@pytest.mark.parametrize("query", ["", "region=us-east-1", "bucket=", "rt=3"])
def test_missing_bucket(query: str) -> None:
    with pytest.raises(BucketNotInUrl) as info:
        _blob(query)
    assert info.value.code == 2322


@pytest.mark.parametrize(
    "url",
    [
        "blobstore://@/bk?bucket=b",
        "blobstore://@:9000/bk?bucket=b",
        "blobstore://@host:port/bk?bucket=b",
        "blobstore://@host:0/bk?bucket=b",
        "blobstore://@host:\u0669/bk?bucket=b",
        "blobstore://@localhost?bucket=b",  # no name
        "blobstore://@localhost/?bucket=b",
        "blobstore://@localhost/bad name?bucket=b",
        "blobstore://@localhost/bad%20name?bucket=b",
        "blobstore://@localhost/na:me?bucket=b",
        "blobstore://@example.com/bk?bucket=b",  # no region, none to guess
    ],
)
def test_bad_blobstore_urls(url: str) -> None:
    with pytest.raises(BackupInvalidUrl):
        parse_url(url)


@pytest.mark.parametrize(
    ("host", "region"),
    [
        ("localhost", "us-east-1"),
        ("127.0.0.1", "us-east-1"),
        ("s3.us-west-2.amazonaws.com", "us-west-2"),
        ("mybucket.s3.eu-west-1.amazonaws.com", "eu-west-1"),
        ("cos.ap-guangzhou.myqcloud.com", "ap-guangzhou"),
        ("oss-cn-hangzhou.aliyuncs.com", "oss-cn-hangzhou"),
        ("obs.cn-north-4.myhuaweicloud.com", "cn-north-4"),
        ("mys3.example.com", ""),
        ("s3-service.example.com", ""),
        ("example.com", ""),
    ],
)
def test_region_guess_follows_fdb(host: str, region: str) -> None:
    assert guess_region(host) == region


def test_virtual_hosted_bucket() -> None:
    u = _blob("bucket=mybucket", host="mybucket.s3.us-west-2.amazonaws.com")
    assert u.virtual_hosted
    assert u.endpoint_url == "https://s3.us-west-2.amazonaws.com"


@pytest.mark.parametrize(
    "url",
    [
        f"blobstore://AKID:{SECRET}@localhost/bk?bucket=b",
        f"blobstore://AKID:{SECRET}:{TOKEN}@localhost/bk?bucket=b",
        f"blobstore://:{SECRET}@localhost/bk?bucket=b",
        f"blobstore://AKID:{SECRET}@localhost/bk?bucket=b&header=Authorization:{TOKEN}",
        f"blobstore://AKID:{SECRET}@localhost/bk?bucket=b&amp;header=x:{TOKEN}&rt=0",  # invalid, still hidden
        f"blobstore://AKID:{SECRET}@localhost/bk?bogus=1&header=x:{TOKEN}",
        f"blobstore://AKID:{SECRET}@localhost/bk",  # no bucket
    ],
)
def test_secrets_are_redacted_everywhere(url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    shown = [redact_url(url)]
    try:
        parsed = parse_blobstore_url(url)
        container = open_container(url)
        shown += [str(parsed), repr(parsed), repr(container), container.url, repr(parsed.credentials)]
        logging.getLogger("test").info("opened %s and %r", parsed, container)
    except FDBError as exc:
        shown += [str(exc), repr(exc)]
    shown.append(caplog.text)
    for text in shown:
        assert SECRET not in text
        assert TOKEN not in text
    assert "***" in shown[0]


def test_redaction_keeps_what_is_not_secret() -> None:
    assert redact_url("blobstore://AKID:s@host:1/n?bucket=b&sc=0") == "blobstore://AKID:***@host:1/n?bucket=b&sc=0"
    assert redact_url("blobstore://@host/n?bucket=b") == "blobstore://@host/n?bucket=b"
    assert redact_url("blobstore://AKID@host/n?bucket=b") == "blobstore://AKID@host/n?bucket=b"
    assert redact_url("file:///a:b@c") == "file:///a:b@c"


def test_stored_urls_lose_their_secret_and_token_but_keep_the_key() -> None:
    assert without_secret("blobstore://AKID:s/x:tok@host:1/n?bucket=b") == "blobstore://AKID@host:1/n?bucket=b"
    for kept in ("blobstore://AKID@host/n?bucket=b", "blobstore://@host/n?bucket=b", "file:///a:b@c"):
        assert without_secret(kept) == kept


def test_equal_urls_compare_equal_whatever_their_spelling() -> None:
    assert _blob("bucket=b&rt=3") == _blob("rt=3&amp;bucket=b")


def test_start_backup_url() -> None:
    now = datetime(2026, 11, 25, 17, 1, 2, 345)
    assert start_backup_url("file:///backups", now) == "file:///backups/backup-2026-11-25-17-01-02.000345"
    assert start_backup_url("file:///backups/", now) == "file:///backups/backup-2026-11-25-17-01-02.000345"
    blob = "blobstore://@localhost/bk?bucket=b"
    assert start_backup_url(blob, now) == blob
    assert start_backup_url("file:///backups").startswith("file:///backups/backup-")
