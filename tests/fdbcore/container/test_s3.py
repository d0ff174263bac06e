"""S3-only behaviour: layout in the bucket, multipart, retries, error translation, clients, secrets."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fdbcore.container import open_container
from fdbcore.container.s3 import DEFAULT_PART_SIZE, S3Container
from fdbcore.errors import (
    BackupAuthMissing,
    BackupAuthUnreadable,
    BackupDoesNotExist,
    FDBError,
    FileNotFound,
    HttpRequestFailed,
)
from tests.fixtures.s3 import S3Endpoint, S3FaultProxy

MiB = 1 << 20


def _s3(url: str) -> S3Container:
    c = open_container(url)
    assert isinstance(c, S3Container)
    return c


def test_create_makes_bucket_and_index_object(s3_endpoint: S3Endpoint) -> None:
    bucket = "fresh-bucket-for-create"
    c = _s3(s3_endpoint.url(bucket, "team/nightly", secret_in_url=True))
    c.create()
    c.create()  # idempotent
    c.write("properties/log_begin_version", b"5")
    s3 = s3_endpoint.client()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["backups/team/nightly", "data/team/nightly/properties/log_begin_version"]
    assert s3.get_object(Bucket=bucket, Key="backups/team/nightly")["Body"].read() == b""
    for key in keys:
        s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_bucket(Bucket=bucket)


def test_create_bucket_in_another_region(s3_endpoint: S3Endpoint) -> None:
    url = s3_endpoint.url("eu-bucket-for-create", secret_in_url=True).replace("us-east-1", "eu-west-1")
    c = _s3(url)
    c.create()
    s3 = s3_endpoint.client()
    location = s3.get_bucket_location(Bucket="eu-bucket-for-create")["LocationConstraint"]
    assert location == "eu-west-1"
    s3.delete_object(Bucket="eu-bucket-for-create", Key="backups/backup")
    s3.delete_bucket(Bucket="eu-bucket-for-create")


def test_large_writes_use_multipart_and_aborts_leave_no_upload(
    s3_endpoint: S3Endpoint, s3_bucket: str, blobstore_url: str
) -> None:
    c = _s3(blobstore_url)
    assert c.part_size == DEFAULT_PART_SIZE
    data = random.Random(1).randbytes(2 * DEFAULT_PART_SIZE + 1000)
    with c.open_write("big") as w:
        w.write(data)
    s3 = s3_endpoint.client()
    head = s3.head_object(Bucket=s3_bucket, Key="data/backup/big")
    assert head["ETag"].endswith('-3"')  # three parts
    assert c.read("big") == data

    w = c.open_write("aborted")
    w.write(data)
    assert len(s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])) == 1
    w.abort()
    assert s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert not c.exists("aborted")


def test_part_size_follows_url_parameters(blobstore_url: str) -> None:
    assert _s3(blobstore_url + "&minps=16777216").part_size == 16 * MiB
    assert _s3(blobstore_url + "&maxps=6000000").part_size == 6_000_000
    assert _s3(blobstore_url + "&multipart_min_part_size=5242880").part_size == DEFAULT_PART_SIZE


def test_transient_errors_are_retried(s3_fault_proxy: S3FaultProxy, s3_bucket: str) -> None:
    c = _s3(s3_fault_proxy.url(s3_bucket, params="rt=4"))
    c.create()
    s3_fault_proxy.fail(2, status=500, methods="PUT")
    c.write("f", b"payload")
    s3_fault_proxy.fail(1, status=503, code="SlowDown", methods="GET")
    s3_fault_proxy.fail(1, status=502, code="BadGateway", methods="GET")
    assert c.read("f") == b"payload"
    assert [i.path for i in c.list()] == ["f"]


def test_persistent_errors_fail_after_request_tries(s3_fault_proxy: S3FaultProxy, s3_bucket: str) -> None:
    c = _s3(s3_fault_proxy.url(s3_bucket, params="rt=3"))
    c.write("f", b"payload")
    s3_fault_proxy.requests.clear()
    s3_fault_proxy.fail(-1, status=500)
    with pytest.raises(HttpRequestFailed, match=r"read s3://.*/data/backup/f: InternalError \(HTTP 500\)"):
        c.read("f")
    assert s3_fault_proxy.requests == {"GET": 3}


def test_cut_off_bodies_are_retried_and_never_returned(s3_fault_proxy: S3FaultProxy, s3_bucket: str) -> None:
    c = _s3(s3_fault_proxy.url(s3_bucket, params="rt=3"))
    data = os.urandom(100_000)
    c.write("f", data)
    s3_fault_proxy.truncate(2)
    assert c.read("f") == data
    assert c.read("f", 10, 1000) == data[10:1010]

    s3_fault_proxy.truncate(-1)
    with pytest.raises(HttpRequestFailed, match=r"IncompleteReadError|ResponseStreamingError"):
        c.read("f")


def test_a_server_ignoring_ranges_is_caught(s3_fault_proxy: S3FaultProxy, s3_bucket: str) -> None:
    c = _s3(s3_fault_proxy.url(s3_bucket))
    c.write("f", bytes(range(100)))
    s3_fault_proxy.ignore_range(1)
    with pytest.raises(HttpRequestFailed, match="asked for 10 bytes at 5, got 100"):
        c.read("f", 5, 10)
    assert c.read("f", 5, 10) == bytes(range(5, 15))


def test_download_survives_a_cut_off_body(s3_fault_proxy: S3FaultProxy, s3_bucket: str, tmp_path: Path) -> None:
    c = _s3(s3_fault_proxy.url(s3_bucket))
    data = os.urandom(300_000)
    c.write("f", data)
    s3_fault_proxy.truncate(1)
    c.download_file("f", str(tmp_path / "f"))
    assert (tmp_path / "f").read_bytes() == data


def test_failed_multipart_write_is_aborted(
    s3_endpoint: S3Endpoint, s3_fault_proxy: S3FaultProxy, s3_bucket: str
) -> None:
    c = _s3(s3_fault_proxy.url(s3_bucket, params="rt=2"))
    w = c.open_write("big")
    w.write(os.urandom(DEFAULT_PART_SIZE))  # first part uploaded
    s3_fault_proxy.fail(-1, status=500, methods="PUT")
    with pytest.raises(HttpRequestFailed):
        w.write(os.urandom(DEFAULT_PART_SIZE))
    s3_fault_proxy.clear()
    assert s3_endpoint.client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert not c.exists("big")


def test_unreachable_endpoint_is_an_error(s3_endpoint: S3Endpoint) -> None:
    closed = S3Endpoint("127.0.0.1", 9)  # discard port: nothing listens
    c = _s3(closed.url("bucket", secret_in_url=True, params="rt=2&cto=1"))
    with pytest.raises(HttpRequestFailed, match="EndpointConnectionError"):
        list(c.list())
    with pytest.raises(HttpRequestFailed):
        c.write("f", b"x")


def test_missing_bucket_is_backup_does_not_exist(s3_endpoint: S3Endpoint) -> None:
    c = _s3(s3_endpoint.url("no-such-bucket-here", secret_in_url=True))
    with pytest.raises(BackupDoesNotExist):
        list(c.list())
    with pytest.raises(BackupDoesNotExist):
        c.write("f", b"x")
    with pytest.raises(BackupDoesNotExist):
        c.read("f")


def test_access_denied_is_an_auth_error(s3_fault_proxy: S3FaultProxy, s3_bucket: str) -> None:
    c = _s3(s3_fault_proxy.url(s3_bucket))
    s3_fault_proxy.fail(-1, status=403, code="AccessDenied")
    with pytest.raises(BackupAuthUnreadable, match="access denied"):
        c.read("f")
    with pytest.raises(BackupAuthUnreadable):
        c.size("f")  # a bodiless 403 on HEAD


def test_delete_objects_carries_content_md5(blobstore_url: str) -> None:
    c = _s3(blobstore_url)
    for i in range(3):
        c.write(f"d/{i}", b"x")
    seen: list[tuple[bytes, bytes]] = []

    def capture(request: Any, **_: Any) -> None:
        seen.append((request.headers["Content-MD5"], request.body))

    c.client().meta.events.register("before-send.s3.DeleteObjects", capture)
    try:
        assert c.delete_prefix("d/") == 3
    finally:
        c.client().meta.events.unregister("before-send.s3.DeleteObjects", capture)
    [(md5, body)] = seen
    assert md5 == base64.b64encode(hashlib.md5(body).digest())


def test_url_headers_are_sent(blobstore_url: str) -> None:
    c = _s3(blobstore_url + "&header=x-fdb-test:one&header=x-fdb-test:two")
    seen: list[bytes] = []

    def capture(request: Any, **_: Any) -> None:
        seen.append(request.headers["x-fdb-test"])

    c.client().meta.events.register("before-send.s3", capture)
    c.write("f", b"x")
    assert seen == [b"one,two"]


def test_clients_are_cached_per_process(blobstore_url: str) -> None:
    a, b = _s3(blobstore_url), _s3(blobstore_url)
    assert a.client() is b.client()
    assert _s3(blobstore_url + "&rt=3").client() is not a.client()

    parent_client = a.client()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must build its own client, and it must work
        try:
            a.write("from-child", b"hi")
            ok = a.client() is not parent_client
            os.write(write_fd, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write_fd)
    assert os.read(read_fd, 1) == b"1"
    os.waitpid(pid, 0)
    assert a.read("from-child") == b"hi"


def test_credentials_from_fdb_credentials_file(
    s3_endpoint: S3Endpoint, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FDB_BLOB_CREDENTIALS", raising=False)
    creds = s3_endpoint.write_credentials_file(tmp_path / "creds.json")
    c = open_container(s3_endpoint.url(s3_bucket), credential_files=[str(creds)])
    c.write("f", b"x")
    assert c.read("f") == b"x"


def _aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: str | None = None) -> None:
    """Leave boto3's chain only ``key`` (with a made-up secret) in the environment, or nothing at all."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("FDB_BLOB_CREDENTIALS", raising=False)
    if key is not None:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", f"{key}-secret")


def test_no_credentials_anywhere_is_auth_missing_at_first_use(
    s3_endpoint: S3Endpoint, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _aws_environment(monkeypatch, tmp_path)
    c = open_container(s3_endpoint.url(s3_bucket))  # opening contacts nothing
    with pytest.raises(BackupAuthMissing):
        c.read("f")


def test_boto3_chain_is_the_fallback(
    s3_endpoint: S3Endpoint, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _aws_environment(monkeypatch, tmp_path, key="from-env")
    url = s3_endpoint.url(s3_bucket).replace("blobstore://@", "blobstore://")  # no '@': no lookup at all
    c = open_container(url)
    c.write("f", b"x")
    assert c.read("f") == b"x"


def test_secrets_never_reach_logs_errors_or_reprs(
    s3_endpoint: S3Endpoint, s3_fault_proxy: S3FaultProxy, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = s3_endpoint.secret_key
    url = s3_fault_proxy.url(s3_bucket, params="rt=2&header=x-amz-meta-note:also-hidden")
    assert secret in url
    c = open_container(url)
    c.write("f", b"x")
    s3_fault_proxy.truncate(1)
    c.read("f")
    s3_fault_proxy.fail(-1, status=500)
    errors: list[FDBError] = []
    for op in (lambda: c.read("f"), lambda: c.write("g", b"y"), lambda: list(c.list())):
        with pytest.raises(FDBError) as info:
            op()
        errors.append(info.value)
    with pytest.raises(FileNotFound):
        open_container(s3_endpoint.url(s3_bucket, secret_in_url=True)).read("missing")

    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("fdbcore"))
    assert "retrying read" in ours
    for text in (repr(c), str(c.url), *map(str, errors), *map(repr, errors), ours):
        assert secret not in text
        assert "also-hidden" not in text
    # botocore's own DEBUG output shows header values (and session tokens), but never the secret key.
    assert secret not in caplog.text


def test_sdk_auth_ignores_url_credentials(
    s3_endpoint: S3Endpoint, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _aws_environment(monkeypatch, tmp_path, key="sdk-chain-key")
    c = _s3(s3_endpoint.url(s3_bucket, secret_in_url=True, params="sa=1"))
    seen: list[bytes] = []
    c.client().meta.events.register(
        "before-send.s3", lambda request, **_: seen.append(request.headers["Authorization"])
    )
    c.write("f", b"x")
    assert b"Credential=sdk-chain-key/" in seen[0]


def test_subprocesses_reach_the_endpoint_with_s3_env(blobstore_url: str, s3_env: dict[str, str]) -> None:
    c = open_container(blobstore_url)
    c.write("from-parent", b"hello")
    code = (
        "import sys; from fdbcore.container import open_container; "
        "c = open_container(sys.argv[1]); c.write('from-child', c.read('from-parent') + b'!')"
    )
    clean_env = {k: v for k, v in s3_env.items() if k != "AWS_ACCESS_KEY_ID"}  # FDB's file must suffice
    subprocess.run([sys.executable, "-c", code, blobstore_url], env=clean_env, check=True, timeout=60)
    assert c.read("from-child") == b"hello!"
