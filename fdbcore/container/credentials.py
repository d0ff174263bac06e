"""Blob store credentials: FDB's credentials files, with boto3's own chain as the fallback.

A ``blobstore://`` URL may carry a full ``key:secret[:token]``, or only part of it and leave the rest
to credentials files (``--blob-credentials FILE``, repeatable, then the colon-separated
``FDB_BLOB_CREDENTIALS``), which hold ``{"accounts": {"<key>@<host>": {"secret": ..., "token": ...},
"@<host>": {"api_key": ..., "secret": ..., "token": ...}}}``.

The lookup follows ``S3BlobStoreEndpoint::credentialFileKey`` and ``updateSecret``: a URL with both
key and secret reads no file; otherwise the single account name is ``<key>@<host>`` when the URL
names a key and ``@<host>`` when it does not, where ``<host>`` never includes the port. Files are
tried in order and the first account that supplies every missing field wins, even when another file
is unreadable. Where FDB would then fail, we fall back to boto3's default chain (environment,
``~/.aws``, instance role) unless some file was unreadable: that is reported, not papered over.

Secrets never reach a log line, an exception or a ``repr``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fdbcore.errors import BackupAuthUnreadable

ENV_VAR = "FDB_BLOB_CREDENTIALS"
REDACTED = "***"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    """An access key with its secret and optional session token; empty strings mean "not given"."""

    key: str
    secret: str = ""
    token: str = ""

    def __repr__(self) -> str:
        hidden = ", ".join(f"{name}={REDACTED!r}" for name in ("secret", "token") if getattr(self, name))
        return f"Credentials(key={self.key!r}{', ' if hidden else ''}{hidden})"

    @property
    def complete(self) -> bool:
        return bool(self.key and self.secret)


def credential_files(cli_files: Sequence[str] = (), environ: Mapping[str, str] | None = None) -> list[str]:
    """``--blob-credentials`` files first, then those listed in ``FDB_BLOB_CREDENTIALS``; all are used."""
    env = (os.environ if environ is None else environ).get(ENV_VAR, "")
    return [*cli_files, *(f for f in env.split(":") if f)]


def account_name(host: str, key: str) -> str:
    """The account a URL's credentials are looked up under: ``<key>@<host>``, host without port."""
    return f"{key}@{host}"


class _Unusable(Exception):
    """A credentials file that cannot be used; the message is safe to show (no file content)."""


def _read_accounts(path: str) -> dict[str, object]:
    """The ``accounts`` object of one credentials file (empty if it has none)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise _Unusable(exc.strerror or type(exc).__name__) from None
    try:
        doc = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError or UnicodeDecodeError; their text may quote the file
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise _Unusable(f"not valid JSON{where}") from None
    if not isinstance(doc, dict):
        raise _Unusable("not a JSON object")
    accounts = doc.get("accounts")
    return accounts if isinstance(accounts, dict) else {}


def _complete(partial: Credentials, account: object) -> Credentials | None:
    """``partial`` with its missing key/secret taken from ``account``, or None if it lacks one."""
    if not isinstance(account, dict):
        return None

    def field(name: str) -> str | None:
        value = account.get(name)
        return value if isinstance(value, str) else None

    key = partial.key or field("api_key")
    secret = partial.secret or field("secret")
    if not key or not secret:
        return None
    return Credentials(key, secret, field("token") or partial.token)


def resolve_credentials(host: str, from_url: Credentials | None, files: Sequence[str]) -> Credentials | None:
    """The credentials to sign requests to ``host`` with; None means "use boto3's default chain".

    Raises :class:`BackupAuthUnreadable` (naming the files, never their content) when no file
    supplied the credentials and at least one could not be read or parsed.
    """
    if from_url is None:
        return None
    if from_url.complete:
        return from_url
    name = account_name(host, from_url.key)
    unreadable: list[str] = []
    for path in files:
        try:
            accounts = _read_accounts(path)
        except _Unusable as exc:
            log.warning("blob credentials file %s is unusable: %s", path, exc)
            unreadable.append(f"{path} ({exc})")
            continue
        found = _complete(from_url, accounts.get(name))
        if found is not None:
            log.debug("credentials for %s found in %s", name, path)
            return found
    if unreadable:
        raise BackupAuthUnreadable(
            f"no credentials for {name}, and blob credentials files are unreadable: {', '.join(unreadable)}"
        )
    log.debug("no credentials file has %s; using boto3's default credential chain", name)
    return None
