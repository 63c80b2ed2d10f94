"""chat-shell-postgres: chat-shell history and runs in PostgreSQL, for many workers and machines.

Registered as ``postgres`` in the ``chat_shell.storage`` (history) and ``chat_shell.runs``
(runs) entry-point groups::

    from chat_shell import create_storage

    storage = create_storage("postgres", url="postgresql://chat:secret@db.internal/chat")
"""

from importlib.metadata import PackageNotFoundError, version

from ._migrations import LATEST_VERSION as SCHEMA_VERSION
from ._runs import PostgresRunStore
from ._storage import PostgresHistoryStorage, PostgresStorage, SearchHit

try:
    __version__ = version("chat-shell-postgres")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "SCHEMA_VERSION",
    "PostgresHistoryStorage",
    "PostgresRunStore",
    "PostgresStorage",
    "SearchHit",
    "__version__",
]
