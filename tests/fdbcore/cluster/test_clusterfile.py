"""Cluster files (FDB's ``description:ID@host:port`` format) and :func:`~fdbcore.cluster.connect` on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from fdbcore import errors
from fdbcore.cluster import clusterfile, connect


def test_cluster_file_format(tmp_path: Path) -> None:
    cf = clusterfile.parse("# comment\nembedded:abc123@127.0.0.1:4500,10.0.0.2:4501:tls\n")
    assert cf.description == "embedded" and cf.id == "abc123"
    assert cf.addresses == (("127.0.0.1", 4500), ("10.0.0.2", 4501))
    for bad in ("", "embedded@127.0.0.1:1", "a:b@host", "a:b@h:99999", "a b:c@h:1"):
        with pytest.raises(errors.ConnectionStringInvalid):
            clusterfile.parse(bad)
    path = tmp_path / "x.cluster"
    clusterfile.write_atomic(path, cf)
    assert clusterfile.read(path) == cf
    with pytest.raises(errors.FileNotFound):
        clusterfile.read(tmp_path / "missing.cluster")
    path.write_text("prod:abc@127.0.0.1:4500\n")
    with pytest.raises(errors.ClientInvalidOperation, match=r"only embedded clusters \(description 'embedded'\)"):
        connect(path)
