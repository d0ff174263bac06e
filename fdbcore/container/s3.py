"""A backup container in an S3 bucket, through boto3, against AWS or any S3-compatible endpoint.

Layout as ``BackupContainerBlobStore``: files live under ``data/<name>/`` and ``create`` adds the
bucket if missing plus an empty index object ``backups/<name>``. Requests use path-style
addressing (virtual hosting when the URL's host starts with ``<bucket>.``, as FDB decides).

Failure handling, in one place:

- botocore's *standard* retry mode retries 5xx, throttling (``SlowDown``), connection resets and
  timeouts, ``request_tries`` attempts in all, with exponential backoff and jitter. Body reads happen
  after botocore returns, so :mod:`tenacity` retries a whole ranged GET when its body is cut short.
- A response is accepted only once its length is what the headers promised.
- Botocore errors become :mod:`fdbcore.errors` here and nowhere else; messages name the operation
  and object, never a secret.

Clients are made lazily and cached per process (the key includes the pid, and the cache is emptied
in a forked child), so Celery prefork workers never share a connection pool across ``fork``.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import functools
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    IncompleteReadError,
    NoCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from fdbcore.container.base import BackupContainer, ContainerWriter, FileInfo, check_path
from fdbcore.container.credentials import Credentials, credential_files, resolve_credentials
from fdbcore.container.local import WRITE_PIECE
from fdbcore.container.url import BlobstoreUrl
from fdbcore.errors import (
    BackupAuthMissing,
    BackupAuthUnreadable,
    BackupDoesNotExist,
    BackupInvalidUrl,
    FDBError,
    FileNotFound,
    FileTooLarge,
    HttpRequestFailed,
    IoError,
)
from fdbcore.naming import blobstore_data_prefix, blobstore_index_key, local_temp_path

if TYPE_CHECKING:
    from botocore.awsrequest import AWSRequest
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import BucketLocationConstraintType
    from mypy_boto3_s3.type_defs import (
        CompletedPartTypeDef,
        ListObjectsV2OutputTypeDef,
        ObjectIdentifierTypeDef,
    )

log = logging.getLogger(__name__)

#: Streaming-writer part size before clamping into [multipart_min_part_size, multipart_max_part_size].
DEFAULT_PART_SIZE: Final = 8 << 20
MAX_PARTS: Final = 10_000  # S3's limit per multipart upload
_DELETE_BATCH: Final = 1000  # S3's limit per DeleteObjects
_NOT_FOUND: Final = frozenset({"NoSuchKey", "NotFound", "404"})
_DENIED: Final = frozenset(
    {"AccessDenied", "Forbidden", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}
)
_CONTENT_RANGE_RE: Final = re.compile(r"bytes ([0-9]+)-([0-9]+)/(?:[0-9]+|\*)")
#: A GET whose body broke off; the whole request is worth repeating.
_BODY_ERRORS: Final = (IncompleteReadError, ResponseStreamingError, ReadTimeoutError, ConnectionClosedError)

T = TypeVar("T")


# --- error translation ------------------------------------------------------------------------------
def _error_code(exc: ClientError) -> tuple[str, int]:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code, int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _translate(exc: BaseException, op: str, where: str) -> FDBError:
    """The :mod:`fdbcore.errors` equivalent of a boto3/botocore failure of ``op`` on ``where``."""
    if isinstance(exc, Boto3Error) and isinstance(exc.__context__, ClientError):
        exc = exc.__context__  # upload_file wraps the real error in S3UploadFailedError
    if isinstance(exc, ClientError):
        code, status = _error_code(exc)
        if code == "NoSuchBucket":
            return BackupDoesNotExist(f"{op} {where}: the bucket does not exist")
        if code == "InvalidBucketName":
            return BackupInvalidUrl(f"{op} {where}: the server rejects the bucket name")
        if code in _NOT_FOUND:
            return FileNotFound(f"{op} {where}: no such file")
        if status == 403 or code in _DENIED:
            return BackupAuthUnreadable(
                f"{op} {where}: access denied ({code or status}); check the credentials and their permissions"
            )
        return HttpRequestFailed(f"{op} {where}: {code or 'error'} (HTTP {status})")
    if isinstance(exc, NoCredentialsError):
        return BackupAuthMissing(f"{op} {where}: no credentials")
    return HttpRequestFailed(f"{op} {where}: {type(exc).__name__}: {exc}")


_S3_ERRORS: Final = (ClientError, BotoCoreError, Boto3Error)


# --- per-process client cache -----------------------------------------------------------------------
_clients: dict[tuple[object, ...], S3Client] = {}
_clients_lock = threading.Lock()


def _forget_clients_in_child() -> None:
    """A forked child must not reuse its parent's sockets, nor a lock some other thread held."""
    global _clients_lock
    _clients.clear()
    _clients_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_clients_in_child)


def _add_content_md5(request: AWSRequest, **_: Any) -> None:
    """boto3 >= 1.36 stopped sending Content-MD5, which some S3-compatible servers require here."""
    body = request.body or b""
    data = body.encode() if isinstance(body, str) else bytes(body)
    digest = hashlib.md5(data, usedforsecurity=False).digest()
    request.headers["Content-MD5"] = base64.b64encode(digest).decode()


def _header_adder(headers: tuple[tuple[str, str], ...]) -> Callable[..., None]:
    def add_headers(request: AWSRequest, **_: Any) -> None:
        for name, value in headers:
            del request.headers[name]
            request.headers[name] = value

    return add_headers


def _make_client(url: BlobstoreUrl, creds: Credentials | None) -> S3Client:
    if creds is None:
        session = boto3.session.Session()
        if session.get_credentials() is None:
            raise BackupAuthMissing(
                f"no credentials for {url}: none in the URL or the blob credentials files, "
                "and boto3 found none (environment, ~/.aws, instance role)"
            )
    else:
        session = boto3.session.Session(
            aws_access_key_id=creds.key,
            aws_secret_access_key=creds.secret,
            aws_session_token=creds.token or None,
        )
    knobs = url.knobs
    config = Config(
        region_name=url.region,
        signature_version="s3v4",
        s3={"addressing_style": "virtual" if url.virtual_hosted else "path"},
        retries={"mode": "standard", "total_max_attempts": knobs.request_tries},
        connect_timeout=knobs.connect_timeout,
        read_timeout=knobs.request_timeout_min,
        max_pool_connections=max(10, knobs.concurrent_uploads, knobs.concurrent_reads_per_file),
        tcp_keepalive=True,
    )
    client = session.client("s3", endpoint_url=url.endpoint_url, config=config)
    client.meta.events.register("before-sign.s3.DeleteObjects", _add_content_md5)
    if url.headers:
        client.meta.events.register("before-sign.s3", _header_adder(url.headers))
    return client


def _client_for(url: BlobstoreUrl, creds: Credentials | None) -> S3Client:
    secret_digest = "" if creds is None else hashlib.sha256(f"{creds.secret}\0{creds.token}".encode()).hexdigest()
    identity = ("default-chain",) if creds is None else (creds.key, secret_digest)
    key = (os.getpid(), url.endpoint_url, url.region, url.virtual_hosted, url.knobs, url.headers, identity)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _make_client(url, creds)
            log.debug("created S3 client for %s (pid %d)", url, os.getpid())
        return client


# --- the container ----------------------------------------------------------------------------------
class S3Container(BackupContainer):
    """The backup named ``url.name`` in ``url.bucket`` at ``url``'s endpoint."""

    def __init__(self, url: BlobstoreUrl, *, blob_credentials: Sequence[str] = ()) -> None:
        """``blob_credentials`` are ``--blob-credentials`` files; ``FDB_BLOB_CREDENTIALS`` adds more."""
        self._url = url
        self._bucket = url.bucket
        self._prefix = blobstore_data_prefix(url.name)
        self._credential_files = credential_files(blob_credentials)
        self._creds: Credentials | None = None
        self._resolved = False
        knobs = url.knobs
        self.part_size = max(knobs.multipart_min_part_size, min(DEFAULT_PART_SIZE, knobs.multipart_max_part_size))

    @property
    def url(self) -> str:
        return str(self._url)

    @property
    def bucket(self) -> str:
        return self._bucket

    def key(self, path: str) -> str:
        """The object key holding container path ``path``."""
        return self._prefix + check_path(path)

    def where(self, key: str) -> str:
        return f"s3://{self._bucket}/{key}"

    def client(self) -> S3Client:
        """This process's client for the container, made at first use (credentials are resolved then)."""
        if not self._resolved:
            from_url = None if self._url.knobs.sdk_auth else self._url.credentials
            self._creds = resolve_credentials(self._url.host, from_url, self._credential_files)
            self._resolved = True
        return _client_for(self._url, self._creds)

    def _call(self, op: str, key: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except _S3_ERRORS as exc:
            raise _translate(exc, op, self.where(key)) from exc

    def create(self) -> None:
        s3 = self.client()
        try:
            s3.head_bucket(Bucket=self._bucket)
        except ClientError as exc:
            if _error_code(exc)[1] != 404:
                raise _translate(exc, "create", self.where("")) from exc
            self._create_bucket()
        except BotoCoreError as exc:
            raise _translate(exc, "create", self.where("")) from exc
        index = blobstore_index_key(self._url.name)
        if self._head(index, "create") is None:
            self._call("create", index, lambda: s3.put_object(Bucket=self._bucket, Key=index, Body=b""))

    def _create_bucket(self) -> None:
        s3 = self.client()
        region = self._url.region
        try:
            if region == "us-east-1":
                s3.create_bucket(Bucket=self._bucket)
            else:
                location = cast("BucketLocationConstraintType", region)
                s3.create_bucket(Bucket=self._bucket, CreateBucketConfiguration={"LocationConstraint": location})
        except ClientError as exc:
            if _error_code(exc)[0] != "BucketAlreadyOwnedByYou":
                raise _translate(exc, "create bucket", self.where("")) from exc
        except BotoCoreError as exc:
            raise _translate(exc, "create bucket", self.where("")) from exc

    def _head(self, key: str, op: str) -> int | None:
        """The object's size, or None if it does not exist."""
        try:
            return self.client().head_object(Bucket=self._bucket, Key=key)["ContentLength"]
        except ClientError as exc:
            if _error_code(exc)[0] in _NOT_FOUND:
                return None
            raise _translate(exc, op, self.where(key)) from exc
        except _S3_ERRORS as exc:
            raise _translate(exc, op, self.where(key)) from exc

    def exists(self, path: str) -> bool:
        return self._head(self.key(path), "exists") is not None

    def size(self, path: str) -> int:
        key = self.key(path)
        size = self._head(key, "size")
        if size is None:
            raise FileNotFound(f"size {self.where(key)}: no such file")
        return size

    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"bad range offset={offset} length={length}")
        if length == 0:
            self.size(path)  # still report a missing file
            return b""
        key = self.key(path)
        retrying = Retrying(
            stop=stop_after_attempt(self._url.knobs.request_tries),
            wait=wait_random_exponential(multiplier=0.25, max=20),  # full jitter
            retry=retry_if_exception_type(_BODY_ERRORS),
            before_sleep=_log_retry(f"read {self.where(key)}"),
            reraise=True,
        )
        return self._call("read", key, lambda: retrying(self._get, key, offset, length))

    def _get(self, key: str, offset: int, length: int | None) -> bytes:
        s3 = self.client()
        ranged = offset > 0 or length is not None
        try:
            if ranged:
                last = "" if length is None else offset + length - 1
                resp = s3.get_object(Bucket=self._bucket, Key=key, Range=f"bytes={offset}-{last}")
            else:
                resp = s3.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc)[0] == "InvalidRange":  # the range starts at or past the end
                return b""
            raise
        # Not ``with body``: that yields the raw urllib3 stream, skipping botocore's length check.
        with contextlib.closing(resp["Body"]) as body:
            data = body.read()
        if ranged:
            # A server that ignored or misread the Range header must not pass off other bytes.
            content_range = resp.get("ContentRange", "")
            m = _CONTENT_RANGE_RE.fullmatch(content_range)
            if (
                m is None
                or int(m[1]) != offset
                or int(m[2]) - int(m[1]) + 1 != len(data)
                or (length is not None and len(data) > length)
            ):
                raise HttpRequestFailed(
                    f"read {self.where(key)}: asked for {length} bytes at {offset}, got {len(data)} "
                    f"with Content-Range {content_range!r}"
                )
        return data

    def open_write(self, path: str) -> ContainerWriter:
        return _S3Writer(self, self.key(path))

    def _transfer_config(self, concurrency: int) -> TransferConfig:
        return TransferConfig(
            multipart_threshold=self.part_size,
            multipart_chunksize=self.part_size,
            max_concurrency=concurrency,
            num_download_attempts=self._url.knobs.request_tries,
            io_chunksize=WRITE_PIECE,  # the largest write into a downloaded file (see local.py)
        )

    def upload_file(self, path: str, local_path: str) -> None:
        key = self.key(path)
        if not os.path.isfile(local_path):
            raise FileNotFound(f"upload from {local_path}: no such file")
        config = self._transfer_config(self._url.knobs.concurrent_uploads)
        s3 = self.client()
        self._call("upload", key, lambda: s3.upload_file(local_path, self._bucket, key, Config=config))

    def download_file(self, path: str, local_path: str) -> None:
        key = self.key(path)
        expected = self.size(path)
        config = self._transfer_config(self._url.knobs.concurrent_reads_per_file)
        s3 = self.client()
        temp = local_temp_path(local_path)
        try:
            self._call("download", key, lambda: s3.download_file(self._bucket, key, temp, Config=config))
            got = os.path.getsize(temp)
            if got != expected:
                raise HttpRequestFailed(f"download {self.where(key)}: got {got} bytes, expected {expected}")
            os.replace(temp, local_path)
        except OSError as exc:
            raise IoError(f"download {self.where(key)} to {local_path}: {exc.strerror or exc}") from exc
        finally:
            if os.path.exists(temp):
                os.unlink(temp)

    def list(self, prefix: str = "") -> Iterator[FileInfo]:
        check_path(prefix, prefix=True)
        where = self.where(self._prefix + prefix)
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=self._prefix + prefix)
        )
        return self._list_pages(pages, where)

    def _list_pages(
        self, pages: Iterable[ListObjectsV2OutputTypeDef], where: str, strip: int | None = None
    ) -> Iterator[FileInfo]:
        """Files of the listed pages, with ``strip`` characters (default: the data prefix) cut from keys."""
        cut = len(self._prefix) if strip is None else strip
        try:
            # S3 lists keys in UTF-8 byte order, which is the code point order of the paths.
            for page in pages:
                for obj in page.get("Contents", []):
                    yield FileInfo(obj["Key"][cut:], obj["Size"])
        except _S3_ERRORS as exc:
            raise _translate(exc, "list", where) from exc

    def backup_names(self) -> builtins.list[str]:
        """Names of the backups in this bucket whose names start with this URL's name (their index objects)."""
        index = blobstore_index_key(self._url.name)
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=index)
        cut = len(blobstore_index_key(""))
        return [f.path[cut:] for f in self._list_pages(pages, self.where(index), strip=0)]

    def destroy(self) -> int:
        n = self.delete_prefix("")
        index = blobstore_index_key(self._url.name)
        s3 = self.client()
        self._call("delete", index, lambda: s3.delete_object(Bucket=self._bucket, Key=index))
        return n

    def delete(self, path: str) -> None:
        key = self.key(path)
        s3 = self.client()
        self._call("delete", key, lambda: s3.delete_object(Bucket=self._bucket, Key=key))

    def delete_prefix(self, prefix: str) -> int:
        """Delete in batches of 1000 keys (DeleteObjects), page by page of the listing."""
        check_path(prefix, prefix=True)
        s3 = self.client()
        where = self.where(self._prefix + prefix)
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=self._prefix + prefix, PaginationConfig={"PageSize": _DELETE_BATCH}
        )
        deleted = 0
        try:
            for page in pages:
                keys: list[ObjectIdentifierTypeDef] = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
                if not keys:
                    continue
                resp = s3.delete_objects(Bucket=self._bucket, Delete={"Objects": keys, "Quiet": True})
                if errors := resp.get("Errors"):
                    first = errors[0]
                    raise HttpRequestFailed(
                        f"delete {where}: {len(errors)} objects not deleted, first "
                        f"{first.get('Key')!r}: {first.get('Code')}"
                    )
                deleted += len(keys)
        except _S3_ERRORS as exc:
            raise _translate(exc, "delete", where) from exc
        return deleted


def _log_retry(what: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("retrying %s after %s (attempt %d)", what, type(exc).__name__, state.attempt_number)

    return before_sleep


class _S3Writer(ContainerWriter):
    """Holds at most one part in memory: a single PUT for a small file, a multipart upload otherwise.

    The object appears only on PutObject or CompleteMultipartUpload; any failure aborts the
    multipart upload so no parts linger.
    """

    def __init__(self, container: S3Container, key: str) -> None:
        self._c = container
        self._key = key
        self._buf = bytearray()
        self._written = 0
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._closed = False

    @property
    def bytes_written(self) -> int:
        return self._written

    def _check_open(self, op: str) -> None:
        if self._closed:
            raise IoError(f"{op} {self._c.where(self._key)} after it was finished or aborted")

    def write(self, data: bytes | memoryview) -> None:
        self._check_open("write")
        self._buf += data
        self._written += len(data)
        size = self._c.part_size
        while len(self._buf) >= size:
            part = bytes(self._buf[:size])
            del self._buf[:size]
            self._guarded(functools.partial(self._upload_part, part))

    def finish(self) -> None:
        self._check_open("finish")
        self._guarded(self._complete)
        self._closed = True

    def _guarded(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except _S3_ERRORS as exc:
            self.abort()
            raise _translate(exc, "write", self._c.where(self._key)) from exc
        except BaseException:
            self.abort()
            raise

    def _upload_part(self, data: bytes) -> None:
        s3 = self._c.client()
        bucket = self._c.bucket
        if self._upload_id is None:
            # CRC32 per part, as boto3's own transfer manager asks for under its default checksum mode.
            resp = s3.create_multipart_upload(Bucket=bucket, Key=self._key, ChecksumAlgorithm="CRC32")
            self._upload_id = resp["UploadId"]
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise FileTooLarge(f"write {self._c.where(self._key)}: more than {MAX_PARTS} parts")
        part = s3.upload_part(
            Bucket=bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm="CRC32",
        )
        completed: CompletedPartTypeDef = {"PartNumber": number, "ETag": part["ETag"]}
        if "ChecksumCRC32" in part:
            completed["ChecksumCRC32"] = part["ChecksumCRC32"]
        self._parts.append(completed)

    def _complete(self) -> None:
        s3 = self._c.client()
        if self._upload_id is None:
            s3.put_object(Bucket=self._c.bucket, Key=self._key, Body=bytes(self._buf))
        else:
            if self._buf:
                self._upload_part(bytes(self._buf))
            s3.complete_multipart_upload(
                Bucket=self._c.bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
            self._upload_id = None
        self._buf = bytearray()

    def abort(self) -> None:
        self._closed = True
        self._buf = bytearray()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is None:
            return
        try:
            self._c.client().abort_multipart_upload(Bucket=self._c.bucket, Key=self._key, UploadId=upload_id)
        except _S3_ERRORS as exc:
            log.warning(
                "could not abort multipart upload of %s (%s); parts stay until a lifecycle rule ends them",
                self._c.where(self._key),
                type(exc).__name__,
            )
