"""History in one SQLite file: durable, shared safely by several processes, searchable."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from chat_shell import (
    HistoryStorage,
    Message,
    ModelUsage,
    NotFoundError,
    SearchHit,
    SessionBusyError,
    SessionInfo,
    SessionUsage,
    StorageError,
    StorageProvider,
    UserError,
    default_home,
    validate_session_id,
)
from chat_shell._storage.contract import check_keep
from chat_shell._storage.rows import (
    check_paging,
    encode_json,
    message_json,
    messages_from_rows,
    query_words,
    search_hits,
    session_from_row,
)

from ._errors import storage_error
from ._migrations import check_current, migrate
from ._search_index import index_due, index_for_search, index_waiting_apart, problems, waiting
from ._worker import Worker

__all__ = ["SQLiteHistoryStorage", "SQLiteStorage", "Synchronous"]

T = TypeVar("T")

Synchronous = Literal["normal", "full", "extra"]
_SYNCHRONOUS = ("normal", "full", "extra")
ReadOnly = bool | Literal["auto"]
_HEADER = b"SQLite format 3\x00"
DEFAULT_BUSY_TIMEOUT = 30.0
CACHE_KIB = 16 * 1024  # page cache per connection; SQLite's default is 2 MiB

_MESSAGE_COLUMNS = "role, content, tool_calls, tool_call_id, name, timestamp, metadata"
_SESSION_COLUMNS = "id, title, owner, created_at, updated_at, message_count, metadata"
_INSERT_MESSAGE = (
    f"INSERT INTO messages (session_id, {_MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
)
_TOUCH_SESSION = (
    "INSERT INTO sessions (id, owner, created_at, updated_at, message_count)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
    " updated_at = excluded.updated_at,"
    " message_count = message_count + excluded.message_count"
)


# -- opening -------------------------------------------------------------------------------------


def _make_folder(folder: Path) -> None:
    missing = []
    probe = folder
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise StorageError(f"cannot create a database under {probe}: it is a file, not a folder")
    for level in reversed(missing):
        try:
            level.mkdir(mode=0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StorageError(
                f"cannot create folder {level} for the history database: {exc.strerror};"
                " choose another storage path"
            ) from exc


# POSIX file locks belong to the process, and closing any descriptor of a file drops all of the
# process's locks on it. Reading the header of a database this process already has open (a
# second storage, the run store's connections) would silently drop the locks its SQLite
# connections hold; another process closing its last connection would then believe it was the
# only one and delete the WAL file, and every write in it, from under them. So the header is
# read only of a file that no connection of this process has open.
_OPEN_LOCK = threading.Lock()
_OPEN: collections.Counter[str] = collections.Counter()


class _Connection(sqlite3.Connection):
    """A connection that counts itself in ``_OPEN`` until it is closed."""

    open_key: str | None = None

    def close(self) -> None:
        key, self.open_key = self.open_key, None
        super().close()
        if key is not None:
            with _OPEN_LOCK:
                _OPEN[key] -= 1
                if _OPEN[key] <= 0:
                    del _OPEN[key]


def _check_existing(path: Path, read_header: bool = True) -> None:
    """An existing file that is not a SQLite database is refused before SQLite even sees it
    (``read_header``: False for a file this process has open, see ``_OPEN``)."""
    if path.is_dir():
        raise StorageError(f"{path} is a folder, not a database file; choose a file path")
    if not read_header:
        return
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_HEADER))
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}; check its permissions") from exc
    if header and header != _HEADER:
        raise StorageError(
            f"{path} is not a SQLite database; chat-shell left it untouched: move it away or"
            " choose another storage path"
        )


def _write_protection(path: Path) -> str | None:
    """Why this process cannot write the existing database ``path``; ``None`` when it can."""
    if not os.access(path, os.W_OK):
        return "the file is write-protected"
    folder = path.parent
    sidecars = all(Path(f"{path}{suffix}").exists() for suffix in ("-wal", "-shm"))
    if not sidecars and not os.access(folder, os.W_OK | os.X_OK):
        return (
            f"its folder {folder} is write-protected, and SQLite needs to create"
            f" {path.name}-wal and {path.name}-shm next to it"
        )
    return None


def _prepare_file(path: Path, read_only: ReadOnly, header: bool = True) -> str | None:
    """Make the folder (0700) and an empty database file (0600), or check the existing file.

    Returns why the file is to be opened read-only, or ``None`` to open it for writing.
    """
    if read_only is True:
        if not path.exists():
            raise StorageError(f"there is no history database at {path} to open read-only")
        _check_existing(path, header)
        return "asked for with read_only=True"
    folder = path.parent
    _make_folder(folder)
    if path.is_dir():
        raise StorageError(f"{path} is a folder, not a database file; choose a file path")
    if not path.exists():
        if not os.access(folder, os.W_OK | os.X_OK):
            raise StorageError(
                f"cannot create {path}: folder {folder} is not writable; choose another"
                " storage path"
            )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:  # another process made it first
            return None
        except OSError as exc:
            raise StorageError(f"cannot create {path}: {exc.strerror}") from exc
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        return None
    _check_existing(path, header)
    why = _write_protection(path)
    if why is None or read_only == "auto":
        return why
    raise StorageError(
        f"{path} is read-only ({why}); make it writable or choose another storage path"
    )


def _enable_wal(conn: sqlite3.Connection, path: Path, busy_timeout: float) -> None:
    # Switching a new file to WAL needs a moment of exclusive access; another process opening
    # the same new file can hold it, so retry within the busy timeout.
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as exc:
            if not getattr(exc, "sqlite_errorname", "").startswith("SQLITE_BUSY"):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)
    if str(mode).lower() != "wal":
        raise StorageError(
            f"{path}: SQLite could not use WAL mode (journal mode is {mode!r}); it is needed for"
            " safe use by several processes. Is the file on a network file system? Choose a"
            " local storage path"
        )


def _read_only_uri(path: Path) -> str:
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
    # With no -wal file the database file holds everything. In a folder this process cannot
    # write, SQLite could not make the -shm file it reads a WAL database with; "immutable" tells
    # it to read the file as it is instead. Nobody without the right to write that folder can
    # start a writer (a writer must create the -wal file first).
    if not os.access(path.parent, os.W_OK | os.X_OK) and not Path(f"{path}-wal").exists():
        uri += "&immutable=1"
    return uri


def open_connection(
    path: Path, synchronous: str, busy_timeout: float, read_only: ReadOnly = False
) -> tuple[sqlite3.Connection, str | None]:
    """Open (creating if needed) and migrate the database; never makes a new file over another.

    Returns the connection and, when it is read-only, why. A read-only connection neither
    creates nor migrates anything: the file must be a chat-shell history of the current schema.
    """
    key = os.path.realpath(path)
    with _OPEN_LOCK:
        why = _prepare_file(path, read_only, header=not _OPEN[key])
        # mode=rw: SQLite must not create a file of its own (we made it above, 0600).
        uri = (
            f"file:{urllib.parse.quote(str(path))}?mode=rw" if why is None else _read_only_uri(path)
        )
        try:
            conn = sqlite3.connect(
                uri,
                uri=True,
                timeout=busy_timeout,
                isolation_level=None,
                check_same_thread=True,
                factory=_Connection,
            )
        except sqlite3.Error as exc:
            raise storage_error(path, exc, busy_timeout) from exc
        assert isinstance(conn, _Connection)
        conn.open_key = key
        _OPEN[key] += 1
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        if why is None:
            _enable_wal(conn, path, busy_timeout)
            conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            migrate(conn, path)
        else:
            conn.execute("PRAGMA temp_store = MEMORY")  # a read-only search's temporary index
            check_current(conn, path, why)
    except (sqlite3.Error, UnicodeDecodeError) as exc:
        conn.close()
        raise storage_error(path, exc, busy_timeout) from exc
    except BaseException:
        conn.close()
        raise
    return conn, why


# -- rows ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection, begin: str) -> Iterator[None]:
    conn.execute(begin)
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _write(conn: sqlite3.Connection) -> contextlib.AbstractContextManager[None]:
    """A write transaction, begun IMMEDIATE: it takes the write lock up front (waiting for it
    within the busy timeout), so it can never fail half-way on a lock another writer holds."""
    return _transaction(conn, "BEGIN IMMEDIATE")


def _snapshot(conn: sqlite3.Connection) -> contextlib.AbstractContextManager[None]:
    """A read transaction: every statement in it sees the file as it was when it began."""
    return _transaction(conn, "BEGIN")


def _refuse_busy(conn: sqlite3.Connection, session_id: str, doing: str) -> None:
    """Inside a write transaction: ``SessionBusyError`` if the session has a run in progress
    in the file's run store (any process's), so the check and the change are one step."""
    row = conn.execute(
        "SELECT run_id FROM runs WHERE session_id = ? AND status IN ('queued', 'running')",
        (session_id,),
    ).fetchone()
    if row is not None:
        raise SessionBusyError(
            session_id,
            row[0],
            f"session {session_id} has a run in progress ({row[0]}); {doing} it is refused"
            " until the run ends: wait for it or cancel it",
        )


def _message_row(session_id: str, message: Message) -> tuple[Any, ...]:
    tool_calls, metadata = message_json(message)
    return (
        session_id,
        message.role,
        message.content,
        tool_calls,
        message.tool_call_id,
        message.name,
        message.timestamp,
        metadata,
    )


def message_rows(session_id: str, messages: Sequence[Message]) -> list[tuple[Any, ...]]:
    """The ``messages`` table rows of ``messages`` (serialised before the storage thread)."""
    return [_message_row(session_id, message) for message in messages]


def append_rows(
    conn: sqlite3.Connection, session_id: str, rows: list[tuple[Any, ...]], owner: str | None
) -> None:
    """One write transaction: create or touch the session, then insert the rows."""
    now = time.time()
    with _write(conn):
        conn.execute(_TOUCH_SESSION, (session_id, owner, now, now, len(rows)))
        if len(rows) == 1:
            conn.execute(_INSERT_MESSAGE, rows[0])
        else:
            conn.executemany(_INSERT_MESSAGE, rows)
        index_due(conn)


_HIT_COLUMNS = ", ".join("m." + column for column in _MESSAGE_COLUMNS.split(", "))
_SNIPPET = "snippet({index}, 0, '**', '**', '…', 12)"
_HIT_FILTER = (
    " JOIN sessions AS s ON s.id = m.session_id"
    " WHERE {match}"
    " AND (:owner IS NULL OR s.owner = :owner)"
    " AND (:session IS NULL OR m.session_id = :session)"
)
_SEARCH = (
    f"SELECT m.session_id, {_SNIPPET.format(index='messages_fts')}, {_HIT_COLUMNS}"  # noqa: S608
    " FROM messages_fts JOIN messages AS m ON m.id = messages_fts.rowid"
    + _HIT_FILTER.format(match="messages_fts MATCH :query")
    + " ORDER BY rank, m.id DESC LIMIT :limit"
)
# A read-only search: the index, and the temporary one of the messages waiting for it
# (``index_waiting_apart``); each message is in one of the two, ranked by its own.
_SEARCH_WITH_WAITING = (
    f"SELECT m.session_id, hit.snippet, {_HIT_COLUMNS} FROM ("  # noqa: S608
    f" SELECT rowid AS id, {_SNIPPET.format(index='messages_fts')} AS snippet, rank AS score"
    " FROM messages_fts WHERE messages_fts MATCH :query"
    f" UNION ALL SELECT rowid, {_SNIPPET.format(index='messages_fts_waiting')}, rank"
    " FROM temp.messages_fts_waiting WHERE messages_fts_waiting MATCH :query"
    ") AS hit JOIN messages AS m ON m.id = hit.id"
    + _HIT_FILTER.format(match="1")
    + " ORDER BY hit.score, m.id DESC LIMIT :limit"
)


# Token totals by model, added up in place: what SessionUsage.from_messages computes from the
# messages (a count that is not a positive integer counts 0; total defaults to prompt + output).
_USAGE_BY_MODEL = """
SELECT model, count(*), sum(prompt), sum(completion), sum(coalesce(total, prompt + completion))
FROM (
    SELECT
        json_extract(metadata, '$.model') AS model,
        iif(json_type(metadata, '$.usage.prompt_tokens') = 'integer'
            AND json_extract(metadata, '$.usage.prompt_tokens') > 0,
            json_extract(metadata, '$.usage.prompt_tokens'), 0) AS prompt,
        iif(json_type(metadata, '$.usage.completion_tokens') = 'integer'
            AND json_extract(metadata, '$.usage.completion_tokens') > 0,
            json_extract(metadata, '$.usage.completion_tokens'), 0) AS completion,
        iif(json_type(metadata, '$.usage.total_tokens') = 'integer'
            AND json_extract(metadata, '$.usage.total_tokens') > 0,
            json_extract(metadata, '$.usage.total_tokens'), NULL) AS total
    FROM messages
    WHERE session_id = ? AND json_type(metadata, '$.usage') = 'object'
)
GROUP BY model
"""


def _fts_query(text: str) -> str:
    """Plain words to an FTS5 query: each word a quoted phrase, all required.

    Quoting keeps FTS5's operators (``AND``, ``-``, ``*``, quotes…) in the user's text inert.
    """
    return " ".join('"' + word.replace('"', '""') + '"' for word in query_words(text))


# -- history -------------------------------------------------------------------------------------


class SQLiteHistoryStorage(HistoryStorage):
    """``HistoryStorage`` over an open SQLite file, plus search, export and import.

    On a file opened read-only (``read_only_reason`` says why) every read works, search too,
    and every write raises ``StorageError`` before touching anything.
    """

    def __init__(
        self,
        path: Path,
        worker: Worker,
        busy_timeout: float,
        read_only_reason: str | None = None,
    ) -> None:
        self.path = path
        self._worker = worker
        self._busy_timeout = busy_timeout
        self.read_only_reason = read_only_reason

    @property
    def read_only(self) -> bool:
        """Whether the file is open read-only."""
        return self.read_only_reason is not None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def guarded(conn: sqlite3.Connection) -> T:
            try:
                return fn(conn)
            except (sqlite3.Error, UnicodeDecodeError) as exc:
                raise storage_error(self.path, exc, self._busy_timeout) from exc

        return await self._worker.call(guarded)

    async def _run_write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self.read_only_reason is not None:
            raise StorageError(
                f"{self.path} is open read-only ({self.read_only_reason}); nothing was written."
                " Make the file and its folder writable, or choose another storage path"
            )
        return await self._run(fn)

    async def get_history(self, session_id: str, limit: int | None = None) -> list[Message]:
        validate_session_id(session_id)
        if limit is not None and limit <= 0:
            return []
        path = self.path

        def read(conn: sqlite3.Connection) -> list[Message]:
            if limit is None:
                rows = conn.execute(
                    f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE session_id = ? ORDER BY id",  # noqa: S608
                    (session_id,),
                ).fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE session_id = ?"  # noqa: S608
                    " ORDER BY id DESC LIMIT ?",
                    (session_id, limit),
                ).fetchall()
                rows.reverse()
            return messages_from_rows(path, rows)

        return await self._run(read)

    async def get_usage(self, session_id: str) -> SessionUsage:
        validate_session_id(session_id)

        def read(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(_USAGE_BY_MODEL, (session_id,)).fetchall()

        models = {
            str(model) if model else "unknown": ModelUsage(
                calls=calls,
                prompt_tokens=prompt or 0,
                completion_tokens=completion or 0,
                total_tokens=total or 0,
            )
            for model, calls, prompt, completion, total in await self._run(read)
        }
        return SessionUsage.from_models(models)

    async def append_messages(
        self, session_id: str, messages: Sequence[Message], *, owner: str | None = None
    ) -> None:
        validate_session_id(session_id)
        if not messages:
            return
        rows = message_rows(session_id, messages)
        await self._run_write(lambda conn: append_rows(conn, session_id, rows, owner))

    async def clear_history(self, session_id: str) -> None:
        validate_session_id(session_id)

        def write(conn: sqlite3.Connection) -> None:
            with _write(conn):
                _refuse_busy(conn, session_id, "clearing")
                changed = conn.execute(
                    "UPDATE sessions SET message_count = 0, updated_at = ? WHERE id = ?",
                    (time.time(), session_id),
                ).rowcount
                if changed:
                    conn.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))

        await self._run_write(write)

    async def truncate_history(self, session_id: str, keep: int) -> None:
        validate_session_id(session_id)
        check_keep(keep)

        def write(conn: sqlite3.Connection) -> None:
            # One transaction: the check, the delete (its trigger takes the messages out of the
            # search index and keeps the index mark at or below the newest message) and the
            # count. Raising inside it rolls it all back.
            with _write(conn):
                row = conn.execute(
                    "SELECT message_count FROM sessions WHERE id = ?", (session_id,)
                ).fetchone()
                if row is None:
                    raise NotFoundError(f"no session {session_id!r}")
                count = int(row[0])
                check_keep(keep, count)
                if keep == count:
                    return
                if keep == 0:
                    conn.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
                else:
                    (last_kept,) = conn.execute(
                        "SELECT id FROM messages WHERE session_id = ? ORDER BY id LIMIT 1 OFFSET ?",
                        (session_id, keep - 1),
                    ).fetchone()
                    conn.execute(
                        "DELETE FROM messages WHERE session_id = ? AND id > ?",
                        (session_id, last_kept),
                    )
                conn.execute(
                    "UPDATE sessions SET message_count = ?, updated_at = ? WHERE id = ?",
                    (keep, time.time(), session_id),
                )

        await self._run_write(write)

    def _get(self, conn: sqlite3.Connection, session_id: str) -> SessionInfo:
        row = conn.execute(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?",  # noqa: S608
            (session_id,),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no session {session_id!r}")
        return session_from_row(self.path, row)

    async def get_session(self, session_id: str) -> SessionInfo:
        validate_session_id(session_id)
        return await self._run(lambda conn: self._get(conn, session_id))

    async def list_sessions(
        self, *, limit: int = 50, offset: int = 0, owner: str | None = None
    ) -> list[SessionInfo]:
        check_paging(limit, offset)
        path = self.path

        def read(conn: sqlite3.Connection) -> list[SessionInfo]:
            if owner is None:
                rows = conn.execute(
                    f"SELECT {_SESSION_COLUMNS} FROM sessions"  # noqa: S608
                    " ORDER BY updated_at DESC, id DESC LIMIT ? OFFSET ?",
                    (limit, offset),
                ).fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE owner = ?"  # noqa: S608
                    " ORDER BY updated_at DESC, id DESC LIMIT ? OFFSET ?",
                    (owner, limit, offset),
                ).fetchall()
            return [session_from_row(path, row) for row in rows]

        return await self._run(read)

    async def update_session(
        self,
        session_id: str,
        *,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> SessionInfo:
        validate_session_id(session_id)
        extra = encode_json(metadata or {})  # fail on unstorable metadata before touching the file

        def write(conn: sqlite3.Connection) -> SessionInfo:
            with _write(conn):
                info = self._get(conn, session_id)
                merged = {**info.metadata, **json.loads(extra)}
                now = time.time()
                conn.execute(
                    "UPDATE sessions SET title = coalesce(?, title), metadata = ?, updated_at = ?"
                    " WHERE id = ?",
                    (title, encode_json(merged), now, session_id),
                )
            return info.model_copy(
                update={
                    "title": info.title if title is None else title,
                    "metadata": merged,
                    "updated_at": now,
                }
            )

        return await self._run_write(write)

    async def delete_session(self, session_id: str) -> None:
        validate_session_id(session_id)

        def write(conn: sqlite3.Connection) -> None:
            with _write(conn):
                _refuse_busy(conn, session_id, "deleting")
                # ON DELETE CASCADE removes the messages; the triggers remove them from search.
                if not conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount:
                    raise NotFoundError(f"no session {session_id!r}")

        await self._run_write(write)

    # -- answered from the file's own indexes -------------------------------------------------

    async def search(
        self,
        text: str,
        *,
        limit: int = 20,
        owner: str | None = None,
        session_id: str | None = None,
    ) -> list[SearchHit]:
        """``HistoryStorage.search`` from the full-text index: messages whose content contains
        every word of ``text`` (case and accents ignored), best matches first; optionally only
        ``owner``'s sessions or one session."""
        query = _fts_query(text)
        check_paging(limit, 0)
        if session_id is not None:
            validate_session_id(session_id)
        path = self.path
        read_only = self.read_only
        arguments = {"query": query, "owner": owner, "session": session_id, "limit": limit}

        def read(conn: sqlite3.Connection) -> list[SearchHit]:
            if read_only:
                with _snapshot(conn):
                    sql = _SEARCH_WITH_WAITING if index_waiting_apart(conn) else _SEARCH
                    rows = conn.execute(sql, arguments).fetchall()
            else:
                mark, newest = waiting(conn)
                if newest > mark:  # messages wait for the index: add them first, under the lock
                    with _write(conn):
                        index_for_search(conn)
                rows = conn.execute(_SEARCH, arguments).fetchall()
            return search_hits(path, rows)

        return await self._run(read)

    async def import_session(self, info: SessionInfo, messages: Sequence[Message]) -> bool:
        """Store a session exactly as given unless its id exists (one atomic step)."""
        session_id = validate_session_id(info.id)
        rows = message_rows(session_id, messages)
        metadata = encode_json(info.model_dump(mode="json")["metadata"])

        def write(conn: sqlite3.Connection) -> bool:
            with _write(conn):
                created = conn.execute(
                    f"INSERT INTO sessions ({_SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
                    " ON CONFLICT (id) DO NOTHING",
                    (
                        session_id,
                        info.title,
                        info.owner,
                        info.created_at,
                        info.updated_at,
                        len(rows),
                        metadata,
                    ),
                ).rowcount
                if created and rows:
                    conn.executemany(_INSERT_MESSAGE, rows)
                    index_due(conn)
            return bool(created)

        return await self._run_write(write)

    async def integrity_check(self) -> str:
        """``"ok"`` for a healthy file, else what is wrong, a line each: ``PRAGMA
        integrity_check``, then the search index checks (``search_index.problems``)."""

        def read(conn: sqlite3.Connection) -> str:
            found = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
            if found == ["ok"]:
                checked = problems(conn, structure=True)
                found = [f"search index: {problem}" for problem in checked] or found
            return "\n".join(found)

        return await self._run(read)


# -- provider ------------------------------------------------------------------------------------


class SQLiteStorage(StorageProvider):
    """History in a SQLite file (default: ``<chat-shell home>/history.db``).

    ``synchronous`` is SQLite's ``PRAGMA synchronous`` in WAL mode: ``"normal"`` (the default)
    loses nothing when a process crashes and keeps the file consistent through a power loss, which
    may cost the last transactions committed before it; ``"full"`` also keeps those, at the price
    of an fsync per write. ``busy_timeout`` is how long (seconds) to wait for another process's
    write before giving up.

    ``read_only``: ``False`` (the default) opens the file for reading and writing, and refuses a
    write-protected one at once; ``True`` opens it read-only (it must exist, at the current
    schema); ``"auto"`` opens it read-only only when this process may not write it or its
    folder, as SQLite itself does. Read-only, everything reads (search too) and every write
    raises ``StorageError``; ``history.read_only`` says how the file was opened.
    """

    name = "sqlite"
    shared_between_processes = True

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        synchronous: Synchronous = "normal",
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        read_only: ReadOnly = False,
    ) -> None:
        if synchronous not in _SYNCHRONOUS:
            raise UserError(
                f"synchronous must be one of {', '.join(_SYNCHRONOUS)} (got {synchronous!r})"
            )
        if busy_timeout < 0:
            raise UserError(f"busy_timeout must be 0 or more seconds (got {busy_timeout})")
        if read_only not in (False, True, "auto"):
            raise UserError(f"read_only must be False, True or 'auto' (got {read_only!r})")
        self.path = Path(path) if path is not None else default_home() / "history.db"
        self.synchronous: Synchronous = synchronous
        self.busy_timeout = float(busy_timeout)
        self.read_only: ReadOnly = read_only
        self._worker: Worker | None = None
        self._history: SQLiteHistoryStorage | None = None

    @property
    def history(self) -> SQLiteHistoryStorage:
        if self._history is None:
            raise StorageError(
                "SQLiteStorage is not initialized: call `await storage.initialize()`"
            )
        return self._history

    async def initialize(self) -> None:
        if self._history is not None:
            return
        path = self.path.expanduser().absolute()
        worker = Worker(name=f"chat-shell-sqlite {path.name}")
        try:
            why = await worker.open(
                lambda: open_connection(path, self.synchronous, self.busy_timeout, self.read_only)
            )
        except BaseException:
            await worker.close()
            raise
        self._worker = worker
        self._history = SQLiteHistoryStorage(path, worker, self.busy_timeout, why)

    async def close(self) -> None:
        worker, self._worker, self._history = self._worker, None, None
        if worker is not None:
            await worker.close()

    async def __aenter__(self) -> SQLiteStorage:
        await self.initialize()
        return self
