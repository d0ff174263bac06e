"""Backup container URLs: ``file:///abs/path`` and FDB's ``blobstore://`` form, parsed and validated.

``blobstore://[key[:secret[:token]]]@host[:port]/<name>?bucket=<b>[&region=<r>][&<param>=<value>...]``
follows ``IBlobStoreEndpoint::fromString`` and ``BackupContainerBlobStore`` (FDB 7.4/8.0): ``&amp;``
is decoded, every FDB parameter and alias is accepted, an unknown one is ``backup_invalid_url``
naming it, a missing bucket is ``bucket_not_in_url``, and ``<name>`` may hold only alphanumerics and
``_ - . /``. Values are not percent-decoded (FDB does not decode them either).

Parameters that steer boto3 are kept in :class:`BlobKnobs`. FDB's own HTTP-client tuning has no
boto3 counterpart; those parameters are accepted, checked to be integers, and recorded in
``ignored_params`` only: connection handling (connect_tries, max_connection_life,
global_connection_pool, concurrent_requests, concurrent_lists, concurrent_writes_per_file), rate
limits (requests_per_second and its list/write/read/delete variants, max_send/recv_bytes_per_second),
retry delays (max_delay_retryable_error, max_delay_connection_failed, multipart_retry_delay_ms), the
read cache (enable_read_cache, read_block_size, read_ahead_blocks, read_cache_blocks_per_file),
enable_object_integrity_check (boto3 checksums every transfer anyway) and gcs_project_id.

Secrets: :func:`redact_url` hides the secret, token and header values of any string that looks like
a URL, parseable or not; every error message and ``repr`` here goes through it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final

from fdbcore.container.credentials import REDACTED, Credentials
from fdbcore.errors import BackupInvalidUrl, BucketNotInUrl, FDBError
from fdbcore.naming import backup_folder_name

FILE_SCHEME: Final = "file://"
BLOBSTORE_SCHEME: Final = "blobstore://"


@dataclass(frozen=True, slots=True)
class BlobKnobs:
    """The numeric URL parameters boto3 can honour, with FDB's defaults (``fdbclient/ClientKnobs.cpp``)."""

    secure_connection: int = 1
    request_tries: int = 10
    connect_timeout: int = 10  # seconds
    request_timeout_min: int = 60  # seconds; also the socket read timeout
    multipart_min_part_size: int = 5_242_880
    multipart_max_part_size: int = 20_000_000
    concurrent_uploads: int = 20
    concurrent_reads_per_file: int = 3
    #: Take credentials from the SDK's chain (boto3's) only, never from the URL or files.
    sdk_auth: int = 0


#: Long name -> short aliases, for the knobs in :class:`BlobKnobs`.
_USED_KNOBS: Final[dict[str, tuple[str, ...]]] = {
    "secure_connection": ("sc",),
    "request_tries": ("rt",),
    "connect_timeout": ("cto",),
    # FDB renamed request_timeout; its parser takes rtom and the old names, its URL writer emits rto.
    "request_timeout_min": ("rtom", "request_timeout", "rto"),
    "multipart_min_part_size": ("minps",),
    "multipart_max_part_size": ("maxps",),
    "concurrent_uploads": ("cu",),
    "concurrent_reads_per_file": ("crpf",),
    "sdk_auth": ("sa",),
}
_BOOLEAN_KNOBS: Final = frozenset({"secure_connection", "sdk_auth"})

#: FDB knobs with no boto3 counterpart: accepted and ignored.
_IGNORED_KNOBS: Final[dict[str, tuple[str, ...]]] = {
    "connect_tries": ("ct",),
    "max_connection_life": ("mcl",),
    "requests_per_second": ("rps",),
    "list_requests_per_second": ("lrps",),
    "write_requests_per_second": ("wrps",),
    "read_requests_per_second": ("rrps",),
    "delete_requests_per_second": ("drps",),
    "concurrent_requests": ("cr",),
    "multipart_retry_delay_ms": ("mrd",),
    "concurrent_lists": ("cl",),
    "concurrent_writes_per_file": ("cwpf",),
    "enable_read_cache": ("erc",),
    "read_block_size": ("rbs",),
    "read_ahead_blocks": ("rab",),
    "read_cache_blocks_per_file": ("rcb",),
    "max_send_bytes_per_second": ("sbps",),
    "max_recv_bytes_per_second": ("rbps",),
    "max_delay_retryable_error": ("dre",),
    "max_delay_connection_failed": ("dcf",),
    "enable_object_integrity_check": ("eoic",),
    "global_connection_pool": ("gcp",),
}


def _alias_table(table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {alias: name for name, aliases in table.items() for alias in (name, *aliases)}


_USED_ALIASES: Final = _alias_table(_USED_KNOBS)
_IGNORED_ALIASES: Final = _alias_table(_IGNORED_KNOBS)
_PROVIDERS: Final = frozenset({"s3", "gcs"})
_NAME_RE: Final = re.compile(r"[A-Za-z0-9_./-]+")
_INT_RE: Final = re.compile(r"-?[0-9]+")


@dataclass(frozen=True, slots=True)
class FileUrl:
    """A local directory container; ``path`` is absolute and normalised, without a trailing slash."""

    path: str

    def __str__(self) -> str:
        return f"{FILE_SCHEME}{self.path}"


@dataclass(frozen=True, slots=True, repr=False)
class BlobstoreUrl:
    """A parsed ``blobstore://`` URL. ``str()`` and ``repr()`` are redacted."""

    host: str
    port: int | None
    #: The backup's name: its objects live under ``data/<name>/`` in the bucket.
    name: str
    bucket: str
    region: str
    #: What the URL itself says about credentials; None when it has no ``@`` at all.
    credentials: Credentials | None = None
    provider: str = "s3"
    knobs: BlobKnobs = field(default_factory=BlobKnobs)
    #: Extra HTTP headers sent with every request, from ``header=Name:Value``.
    headers: tuple[tuple[str, str], ...] = ()
    #: FDB-only parameters that were accepted without effect, by long name.
    ignored_params: tuple[tuple[str, str], ...] = ()
    #: The URL as given; it may contain a secret, so show it only through ``str()``.
    text: str = field(default="", compare=False)

    @property
    def virtual_hosted(self) -> bool:
        """Whether the host names the bucket (``<bucket>.s3...``), which FDB takes as virtual hosting."""
        return self.host.startswith(f"{self.bucket}.")

    @property
    def endpoint_url(self) -> str:
        """The service endpoint, without the bucket label of a virtual-hosted host."""
        scheme = "https" if self.knobs.secure_connection else "http"
        host = self.host[len(self.bucket) + 1 :] if self.virtual_hosted else self.host
        return f"{scheme}://{host}{'' if self.port is None else f':{self.port}'}"

    def __str__(self) -> str:
        return redact_url(self.text)

    def __repr__(self) -> str:
        return f"BlobstoreUrl({str(self)!r})"


ContainerUrl = FileUrl | BlobstoreUrl

_HEADER_VALUE_RE: Final = re.compile(r"(header=[^:&]*:)[^&]*")
_HEADER_VALUE_REDACTED: Final = rf"\g<1>{REDACTED}"


def redact_url(url: str) -> str:
    """``url`` with any secret, token and header value replaced by ``***``; safe for logs.

    Works on any string, so a URL that failed to parse can still be shown in its error.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme == "file":
        return url
    cred, at, tail = rest.partition("@")
    if at and ":" in cred:
        rest = f"{cred.partition(':')[0]}:{REDACTED}@{tail}"
    return f"{scheme}://{_HEADER_VALUE_RE.sub(_HEADER_VALUE_REDACTED, rest)}"


def without_secret(url: str) -> str:
    """``url`` without the secret and token it may carry (``blobstore://key:secret@host`` becomes
    ``blobstore://key@host``): what a URL may be stored as. Whoever opens it then finds the key's secret
    in its own blob credentials files or environment, as FDB does when a URL names only the key."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme == "file":
        return url
    cred, at, tail = rest.partition("@")
    return f"{scheme}://{cred.partition(':')[0]}@{tail}" if at and ":" in cred else url


def parse_url(url: str) -> ContainerUrl:
    """Parse a container URL, choosing its kind by scheme; ``backup_invalid_url`` otherwise."""
    if url.startswith(FILE_SCHEME):
        return parse_file_url(url)
    if url.startswith(BLOBSTORE_SCHEME):
        return parse_blobstore_url(url)
    raise BackupInvalidUrl(f"unsupported backup URL {redact_url(url)!r}: expected file:// or blobstore://")


def parse_file_url(url: str) -> FileUrl:
    """``file:///abs/path``; trailing slashes are dropped and relative or unnormalised paths refused."""
    if not url.startswith(FILE_SCHEME):
        raise BackupInvalidUrl(f"not a file:// URL: {url!r}")
    path = url[len(FILE_SCHEME) :].rstrip("/\\")
    if not path or not os.path.isabs(path) or os.path.normpath(path) != path:
        raise BackupInvalidUrl(f"backup path in {url!r} must be absolute and normalised (file:///some/path)")
    return FileUrl(path)


def guess_region(host: str) -> str:
    """FDB's ``guessRegionFromDomain``: the label after ``s3.``/``cos.``/``obs.`` (or the ``oss-...``
    label) in the host, ``us-east-1`` for localhost, else ``""``."""
    domain = host.lower()
    if domain in ("127.0.0.1", "localhost"):
        return "us-east-1"
    for service in ("s3.", "cos.", "oss-", "obs."):
        p = domain.find(service)
        if p < 0 or (p >= 1 and domain[p - 1] != "."):
            continue
        h = domain[p:] if service == "oss-" else domain[p + len(service) :]
        return h.partition(".")[0]
    return ""


def _int_param(value: str) -> int | None:
    """FDB parses knob values with ``strtol``: a whole decimal number that fits in 64 bits."""
    if not _INT_RE.fullmatch(value) or not -(2**63) <= int(value) < 2**63:
        return None
    return int(value)


def parse_blobstore_url(url: str) -> BlobstoreUrl:
    """Parse and validate a ``blobstore://`` backup URL (see the module docstring)."""
    shown = redact_url(url)

    def invalid(why: str) -> FDBError:
        return BackupInvalidUrl(f"{why} in {shown}")

    text = url.replace("&amp;amp;", "&").replace("&amp;", "&")
    if not text.startswith(BLOBSTORE_SCHEME):
        raise invalid("not a blobstore:// URL")
    rest = text[len(BLOBSTORE_SCHEME) :]

    # Like FDB, everything before the first '@' is credentials, so a secret may contain '/'.
    credentials = None
    if "@" in rest:
        cred, _, rest = rest.partition("@")
        key, _, secret_and_token = cred.partition(":")
        secret, _, token = secret_and_token.partition(":")
        credentials = Credentials(key, secret, token)

    host_port = re.split(r"[/?]", rest, maxsplit=1)[0]
    after = rest[len(host_port) :]
    name, _, query = after[1:].partition("?") if after.startswith("/") else ("", "", after[1:])
    host, _, port_text = host_port.partition(":")
    if not host:
        raise invalid("host cannot be empty")
    port = None
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
            raise invalid(f"port {port_text!r} is not a number in 1..65535")
        port = int(port_text)
    if not _NAME_RE.fullmatch(name):
        raise invalid(f"backup name {name!r} must be non-empty and only alphanumerics and '_-./'")

    bucket = ""
    region = ""
    provider = "s3"
    knobs: dict[str, int] = {}
    headers: dict[str, str] = {}
    ignored: dict[str, str] = {}
    for part in query.split("&"):
        if not part:
            continue
        pname, eq, value = part.partition("=")
        if not eq:
            raise invalid(f"URL parameter {pname!r} has no value")
        if pname == "bucket":
            bucket = value
        elif pname == "region":
            region = value
        elif pname in ("provider", "p"):
            if value not in _PROVIDERS:
                raise invalid(f"provider {value!r} is not one of {sorted(_PROVIDERS)}")
            provider = value
        elif pname in ("gcs_project_id", "gcspid"):
            ignored["gcs_project_id"] = value
        elif pname == "header":
            hname, colon, hvalue = value.partition(":")
            if not hname or not colon or not hvalue:
                raise invalid("header parameter must be <FieldName>:<FieldValue>, both non-empty")
            # RFC 9110: a repeated field is equivalent to one with the values comma-joined.
            headers[hname] = f"{headers[hname]},{hvalue}" if hname in headers else hvalue
        elif pname in _USED_ALIASES or pname in _IGNORED_ALIASES:
            number = _int_param(value)
            if number is None:
                raise invalid(f"{value!r} is not a valid value for {pname}")
            if pname in _IGNORED_ALIASES:
                ignored[_IGNORED_ALIASES[pname]] = value
                continue
            knob = _USED_ALIASES[pname]
            lowest, highest = (0, 1) if knob in _BOOLEAN_KNOBS else (1, 2**63 - 1)
            if not lowest <= number <= highest:
                raise invalid(f"{pname}={value} is out of range [{lowest}, {highest}]")
            knobs[knob] = number
        else:
            raise invalid(f"unknown URL parameter {pname!r}")

    if not bucket:
        raise BucketNotInUrl(f"the bucket parameter is required in {shown}")
    region = region or guess_region(host)
    if not region:
        raise invalid(f"region cannot be guessed from host {host!r}: add &region=<region>")
    return BlobstoreUrl(
        host=host,
        port=port,
        name=name,
        bucket=bucket,
        region=region,
        credentials=credentials,
        provider=provider,
        knobs=replace(BlobKnobs(), **knobs),
        headers=tuple(headers.items()),
        ignored_params=tuple(ignored.items()),
        text=url,
    )


def start_backup_url(url: str, now: datetime | None = None) -> str:
    """The URL ``fdbbackup start`` writes to: ``file://`` URLs get a ``backup-<timestamp>`` folder
    appended (FDB has always done so), blobstore URLs are used as given."""
    if not url.startswith(FILE_SCHEME):
        return url
    folder = backup_folder_name(now or datetime.now())
    return f"{url}{'' if url.endswith('/') else '/'}{folder}"


def with_name(url: str, name: str) -> str:
    """A blobstore URL naming another backup in the same bucket (the query string is kept)."""
    head, sep, rest = url.partition("://")
    authority, slash, tail = rest.partition("/")
    query = tail.partition("?")[2] if slash else rest.partition("?")[2]
    authority = authority.partition("?")[0]
    return f"{head}{sep}{authority}/{name}" + (f"?{query}" if query else "")
