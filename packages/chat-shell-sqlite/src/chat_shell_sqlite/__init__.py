"""chat-shell-sqlite: durable chat-shell history in one SQLite file.

Registered as the ``sqlite`` backend of the ``chat_shell.storage`` entry-point group::

    from chat_shell import create_storage

    storage = create_storage("sqlite", path="history.db")

and as the ``sqlite`` run store of ``chat_shell.runs``, in the same file: runs outlive the
process that ran them, and every process that opens the file keeps one run per session::

    from chat_shell import create_run_store

    runs = create_run_store("sqlite", path="history.db")
"""

from importlib.metadata import PackageNotFoundError, version

from chat_shell import SearchHit  # kept here for code written before it moved to core

from ._migrations import LATEST_VERSION as SCHEMA_VERSION
from ._run_store import SQLiteRunStore
from ._storage import SQLiteHistoryStorage, SQLiteStorage, Synchronous

try:
    __version__ = version("chat-shell-sqlite")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "SCHEMA_VERSION",
    "SQLiteHistoryStorage",
    "SQLiteRunStore",
    "SQLiteStorage",
    "SearchHit",
    "Synchronous",
    "__version__",
]
