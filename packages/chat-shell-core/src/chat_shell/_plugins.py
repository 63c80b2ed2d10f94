"""Plugins found through entry points: storage backends (``chat_shell.storage``)."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from ._errors import UserError
from ._storage import StorageProvider

__all__ = ["available_storage", "create_storage"]

STORAGE_GROUP = "chat_shell.storage"
_INSTALL_HINTS = {"sqlite": "chat-shell-sqlite"}


def available_storage() -> list[str]:
    """Names of the installed storage backends."""
    return sorted({ep.name for ep in entry_points(group=STORAGE_GROUP)})


def create_storage(name: str, **options: Any) -> StorageProvider:
    """Make the storage backend registered as ``name`` with its options (``path``, ``url`` …)."""
    for entry_point in entry_points(group=STORAGE_GROUP, name=name):
        factory = entry_point.load()
        provider = factory(**{k: v for k, v in options.items() if v is not None})
        if not isinstance(provider, StorageProvider):
            raise UserError(f"storage plugin {name!r} did not return a StorageProvider")
        return provider
    hint = (
        f"; install it with: pip install {_INSTALL_HINTS[name]}" if name in _INSTALL_HINTS else ""
    )
    known = ", ".join(available_storage()) or "none"
    raise UserError(f"unknown storage backend {name!r} (installed: {known}){hint}")
