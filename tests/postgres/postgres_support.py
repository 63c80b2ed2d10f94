"""Fixtures of the PostgreSQL tests (tests/postgres, and tests/e2e through its conftest): a
real server, named by ``CHAT_SHELL_TEST_POSTGRES_URL``; each test gets a database of its own,
dropped afterwards.

Without the variable the tests are skipped with how to run them; under CI (``CI`` set) a missing
server is an error, so they can never be skipped there unnoticed.
"""

from __future__ import annotations

import os
import urllib.parse
import uuid
from collections.abc import Iterator

import psycopg
import pytest

__all__ = ["HOW_TO_RUN", "URL_VARIABLE", "postgres_url", "server_url", "with_database"]

URL_VARIABLE = "CHAT_SHELL_TEST_POSTGRES_URL"
HOW_TO_RUN = (
    f"no PostgreSQL server for the tests: set {URL_VARIABLE}=postgresql://… (a server the tests"
    " may create and drop databases on), or run `make test-postgres`, which starts a"
    " throw-away one (tests/postgres/server.sh)"
)


def with_database(url: str, name: str) -> str:
    """``url`` naming the database ``name`` instead of its own."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def server_url() -> str:
    url = os.environ.get(URL_VARIABLE)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {HOW_TO_RUN}", pytrace=False)
        pytest.skip(HOW_TO_RUN)
    return url


@pytest.fixture
def postgres_url(server_url: str) -> Iterator[str]:
    """The URL of a new, empty database, dropped (with its connections) after the test."""
    name = f"chat_shell_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
