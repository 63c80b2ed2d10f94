"""A PostgreSQL server for the benchmarks, and databases of their own on it.

The server is the one named by ``CHAT_SHELL_BENCH_POSTGRES`` (else ``CHAT_SHELL_TEST_POSTGRES_URL``,
the tests' server) or given on a script's command line; without one, a throw-away server is
started with ``tests/postgres/server.sh start DIR --durable`` (fsync on, as a real server: its own
cluster in a temporary folder, 127.0.0.1 only, a free port) and removed afterwards. Each
benchmark works in a new database on that server (``CREATE DATABASE``, so a given server's user
needs that right), dropped after, so its statistics (``pg_stat_database``) are its own.

When no server can be had (PostgreSQL's server programs are not installed, or the given one is
unreachable) ``PostgresUnavailable`` says why in one line; the scripts turn it into a row that
fails its goal with that reason (``unavailable``), never into a silent omission.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "PostgresUnavailable",
    "database",
    "given_url",
    "server",
    "server_pid",
    "server_version",
    "unavailable",
]

ROOT = Path(__file__).resolve().parents[1]
SERVER_SCRIPT = ROOT / "tests" / "postgres" / "server.sh"


_FOLDERS: dict[str, str] = {}  # URL of a throw-away server -> its folder


class PostgresUnavailable(Exception):
    """No PostgreSQL server to benchmark on; the message says why, in one line."""


def given_url() -> str | None:
    """The server named in the environment, if any."""
    return os.environ.get("CHAT_SHELL_BENCH_POSTGRES") or os.environ.get(
        "CHAT_SHELL_TEST_POSTGRES_URL"
    )


@contextlib.contextmanager
def server(url: str | None = None) -> Iterator[str]:
    """The URL of a server: ``url``, the environment's, else a throw-away one (stopped and
    removed on exit). Meanwhile SIGTERM (a ``timeout``, a stopped ``make``) ends the benchmark
    as an exception does, so what it started is stopped rather than left running."""
    previous = signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(128 + sig))
    try:
        url = url or given_url()
        if url:
            yield url
        else:
            with _throwaway() as own:
                yield own
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _throwaway() -> Iterator[str]:
    folder = tempfile.mkdtemp(prefix="chat-shell-bench-pg-")
    own = ""
    try:
        started = subprocess.run(
            ["bash", str(SERVER_SCRIPT), "start", folder, "--durable"],
            capture_output=True,
            text=True,
            check=False,
        )
        own = started.stdout.strip()
        if started.returncode != 0 or not own:
            reason = (started.stderr.strip().splitlines() or [f"exit {started.returncode}"])[-1]
            raise PostgresUnavailable(f"a throw-away PostgreSQL could not be started: {reason}")
        _FOLDERS[own] = folder
        yield own
    finally:
        _FOLDERS.pop(own, None)
        subprocess.run(
            ["bash", str(SERVER_SCRIPT), "stop", folder], capture_output=True, check=False
        )


@contextlib.contextmanager
def database(base: str) -> Iterator[str]:
    """The URL of a new, empty database on the server at ``base``; dropped on exit."""
    import psycopg

    name = f"chat_shell_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(base, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'CREATE DATABASE "{name}"'.encode())
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PostgresUnavailable(f"cannot create a database on PostgreSQL: {reason}") from exc
    try:
        if base.startswith(("postgresql://", "postgres://")):
            parts = urllib.parse.urlsplit(base)
            yield urllib.parse.urlunsplit(parts._replace(path="/" + name))
        else:  # a libpq "key=value" string
            from psycopg.conninfo import make_conninfo

            yield make_conninfo(base, dbname=name)
    finally:
        with contextlib.suppress(psycopg.Error), psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def server_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        found = connection.execute("SHOW server_version").fetchone()
    return str(found[0]) if found else "?"


def server_pid(base: str) -> int | None:
    """The process id of a throw-away server's postmaster (its other processes are its
    children), or ``None`` for a server given from outside."""
    folder = _FOLDERS.get(base)
    if folder is None:
        return None
    try:
        return int((Path(folder) / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def unavailable(metric: str, goal: str, reason: str) -> dict[str, Any]:
    """A row for a goal that could not be measured: it fails, and its note says why."""
    return {
        "metric": f"{metric}: not measured, no PostgreSQL",
        "unit": "",
        "goal": goal,
        "pass": False,
        "note": f"{metric}: not measured: {reason}",
    }
