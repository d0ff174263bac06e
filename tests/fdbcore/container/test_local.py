"""Local-directory specifics: FDB's temp-and-rename writes, hidden partial files, OSError translation."""

from __future__ import annotations

from pathlib import Path

import pytest

from fdbcore.container import LocalContainer, open_container
from fdbcore.errors import FileNotFound, IoError
from fdbcore.naming import is_uid


def _local(root: Path) -> LocalContainer:
    c = open_container(f"file://{root}")
    assert isinstance(c, LocalContainer)
    return c


def test_writes_go_through_a_temp_file_beside_the_target(tmp_path: Path) -> None:
    c = _local(tmp_path)
    w = c.open_write("logs/0000/0000/log,1,2,u,1024")
    w.write(b"partial")
    [temp] = (tmp_path / "logs/0000/0000").iterdir()
    base, uid, suffix = temp.name.rsplit(".", 2)
    assert (base, suffix) == ("log,1,2,u,1024", "temp") and is_uid(uid)
    assert c.exists("logs/0000/0000/log,1,2,u,1024") is False
    assert list(c.list()) == []
    w.finish()
    assert [p.name for p in (tmp_path / "logs/0000/0000").iterdir()] == ["log,1,2,u,1024"]


def test_listings_hide_partial_files(tmp_path: Path) -> None:
    (tmp_path / "kvranges").mkdir()
    (tmp_path / "kvranges/range,1,u,2").write_bytes(b"ok")
    (tmp_path / "kvranges/range,3,u,2.0123456789abcdef0123456789abcdef.temp").write_bytes(b"half")
    (tmp_path / "kvranges/range,4,u,2.part").write_bytes(b"half")
    assert [i.path for i in _local(tmp_path).list()] == ["kvranges/range,1,u,2"]


def test_missing_root_lists_nothing_and_create_makes_it(tmp_path: Path) -> None:
    c = _local(tmp_path / "a" / "b")
    assert list(c.list()) == []
    c.create()
    assert (tmp_path / "a" / "b").is_dir()
    assert c.url == f"file://{tmp_path}/a/b" and repr(c) == f"LocalContainer('file://{tmp_path}/a/b')"


def test_os_errors_become_io_errors_naming_the_path(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_bytes(b"a file where a folder should be")
    c = _local(tmp_path)
    with pytest.raises(IoError, match=str(tmp_path / "blocker" / "x")):
        c.write("blocker/x", b"data")
    with pytest.raises(FileNotFound):
        c.read("blocker/x")
    (tmp_path / "dir").mkdir()
    with pytest.raises(FileNotFound):
        c.read("dir")
    with pytest.raises(FileNotFound):
        c.size("dir")


def test_failed_download_leaves_nothing_behind(tmp_path: Path) -> None:
    c = _local(tmp_path / "c")
    c.write("f", b"data")
    with pytest.raises(IoError, match="no-such-dir"):
        c.download_file("f", str(tmp_path / "no-such-dir" / "f"))
    c.download_file("f", str(tmp_path / "f"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "f"]
