"""chat-shell-sqlite: durable chat-shell history in one SQLite file.

Registered as the ``sqlite`` backend of the ``chat_shell.storage`` entry-point group::

    from chat_shell import create_storage

    storage = create_storage("sqlite", path="history.db")
"""

from importlib.metadata import PackageNotFoundError, version

from chat_shell import SearchHit  # kept here for code written before it moved to core

from ._migrations import LATEST_VERSION as SCHEMA_VERSION
from ._storage import SQLiteHistoryStorage, SQLiteStorage, Synchronous

try:
    __version__ = version("chat-shell-sqlite")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "SCHEMA_VERSION",
    "SQLiteHistoryStorage",
    "SQLiteStorage",
    "SearchHit",
    "Synchronous",
    "__version__",
]
