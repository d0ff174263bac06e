"""Shared pytest configuration.

Fixtures for real services (Redis, the S3 endpoint, embedded clusters, Celery workers) live in
``tests/fixtures/<service>.py``; every module there is loaded as a plugin, so each service's
fixtures are owned by one file and available to every test.
"""

from __future__ import annotations

import pkgutil
from pathlib import Path

import pytest

pytest_plugins = [
    f"tests.fixtures.{m.name}"
    for m in pkgutil.iter_modules([str(Path(__file__).parent / "fixtures")])
    if not m.name.startswith("_")
]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options must be declared here, at the tests' root; tests/faults/conftest.py uses this one."""
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help="fault suite: many random seeds (S3 fault rates, kill timings) and every kill variant",
    )
