"""chat-shell-postgres: chat-shell history in PostgreSQL, for many workers and machines.

Registered as the ``postgres`` backend of the ``chat_shell.storage`` entry-point group::

    from chat_shell import create_storage

    storage = create_storage("postgres", url="postgresql://chat:secret@db.internal/chat")
"""

from importlib.metadata import PackageNotFoundError, version

from ._migrations import LATEST_VERSION as SCHEMA_VERSION
from ._storage import PostgresHistoryStorage, PostgresStorage, SearchHit

try:
    __version__ = version("chat-shell-postgres")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "SCHEMA_VERSION",
    "PostgresHistoryStorage",
    "PostgresStorage",
    "SearchHit",
    "__version__",
]
