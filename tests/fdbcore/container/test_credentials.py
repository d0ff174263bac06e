"""Blob credentials files: FDB's lookup rule, file order, bad files, and secrets kept out of sight."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from fdbcore.container.credentials import Credentials, account_name, credential_files, resolve_credentials
from fdbcore.errors import BackupAuthUnreadable

SECRET = "file-secret-value-0123456789"


def _file(path: Path, accounts: dict[str, object]) -> str:
    path.write_text(json.dumps({"accounts": accounts}))
    return str(path)


def test_account_names_never_include_the_port() -> None:
    assert account_name("s3.example.com", "AKID") == "AKID@s3.example.com"
    assert account_name("127.0.0.1", "") == "@127.0.0.1"


def test_credential_files_come_from_flags_then_environment() -> None:
    env = {"FDB_BLOB_CREDENTIALS": "/e/1.json::/e/2.json"}
    assert credential_files(["/cli/a.json", "/cli/b.json"], env) == [
        "/cli/a.json",
        "/cli/b.json",
        "/e/1.json",
        "/e/2.json",
    ]
    assert credential_files([], {}) == []


def test_credential_files_read_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FDB_BLOB_CREDENTIALS", "/x.json")
    assert credential_files() == ["/x.json"]


def test_complete_url_credentials_read_no_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    url_creds = Credentials("AKID", "url-secret", "tok")
    assert resolve_credentials("h", url_creds, [str(broken)]) is url_creds


def test_no_at_sign_means_boto3_chain(tmp_path: Path) -> None:
    f = _file(tmp_path / "c.json", {"@h": {"api_key": "k", "secret": SECRET}})
    assert resolve_credentials("h", None, [f]) is None


def test_key_at_host_supplies_the_secret(tmp_path: Path) -> None:
    f = _file(tmp_path / "c.json", {"AKID@h": {"secret": SECRET}, "@h": {"api_key": "other", "secret": "x"}})
    assert resolve_credentials("h", Credentials("AKID"), [f]) == Credentials("AKID", SECRET)


def test_at_host_supplies_key_secret_and_token(tmp_path: Path) -> None:
    f = _file(tmp_path / "c.json", {"@h": {"api_key": "K", "secret": SECRET, "token": "T"}})
    assert resolve_credentials("h", Credentials(""), [f]) == Credentials("K", SECRET, "T")


def test_url_secret_with_key_from_file(tmp_path: Path) -> None:
    f = _file(tmp_path / "c.json", {"@h": {"api_key": "K", "secret": "ignored"}})
    assert resolve_credentials("h", Credentials("", "url-secret"), [f]) == Credentials("K", "url-secret")


def test_a_named_key_does_not_fall_back_to_the_host_account(tmp_path: Path) -> None:
    # FDB looks up exactly one account: <key>@<host> when the URL names a key.
    f = _file(tmp_path / "c.json", {"@h": {"api_key": "K", "secret": SECRET}})
    assert resolve_credentials("h", Credentials("AKID"), [f]) is None


def test_accounts_with_a_port_do_not_match(tmp_path: Path) -> None:
    f = _file(tmp_path / "c.json", {"@h:9000": {"api_key": "K", "secret": SECRET}})
    assert resolve_credentials("h", Credentials(""), [f]) is None


@pytest.mark.parametrize(
    "account",
    [
        {"secret": SECRET},  # @host needs api_key too
        {"api_key": "K"},
        {"api_key": "K", "secret": 5},
        "not an object",
    ],
)
def test_incomplete_accounts_do_not_match(tmp_path: Path, account: object) -> None:
    f = _file(tmp_path / "c.json", {"@h": account})
    assert resolve_credentials("h", Credentials(""), [f]) is None


def test_first_file_with_a_match_wins(tmp_path: Path) -> None:
    a = _file(tmp_path / "a.json", {"@other": {"api_key": "A", "secret": "a"}})
    b = _file(tmp_path / "b.json", {"@h": {"api_key": "B", "secret": "b"}})
    c = _file(tmp_path / "c.json", {"@h": {"api_key": "C", "secret": "c"}})
    assert resolve_credentials("h", Credentials(""), [a, b, c]) == Credentials("B", "b")


def test_a_match_wins_over_an_unreadable_file(tmp_path: Path) -> None:
    good = _file(tmp_path / "good.json", {"@h": {"api_key": "K", "secret": SECRET}})
    assert resolve_credentials("h", Credentials(""), [str(tmp_path / "missing.json"), good]) == Credentials("K", SECRET)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "No such file or directory"),
        (f'{{"accounts": {{"@h": {{"secret": "{SECRET}"', "not valid JSON at line 1"),
        (f'["{SECRET}"]', "not a JSON object"),
        (b"\xff\xfe" + SECRET.encode(), "not valid JSON"),
    ],
)
def test_unusable_files_are_named_without_their_content(
    tmp_path: Path, content: str | bytes | None, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "creds.json"
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BackupAuthUnreadable, match=reason) as info:
        resolve_credentials("h", Credentials(""), [str(path)])
    assert info.value.code == 2318
    assert str(path) in str(info.value)
    for text in (str(info.value), repr(info.value), caplog.text):
        assert SECRET not in text


def test_credentials_repr_hides_secret_and_token() -> None:
    text = repr(Credentials("AKID", SECRET, "TOKEN-VALUE"))
    assert "AKID" in text
    assert SECRET not in text and "TOKEN-VALUE" not in text
    assert repr(Credentials("AKID")) == "Credentials(key='AKID')"
    assert str(Credentials("AKID", SECRET)) == "Credentials(key='AKID', secret='***')"
