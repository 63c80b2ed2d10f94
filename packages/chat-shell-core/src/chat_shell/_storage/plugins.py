"""Plugins found through entry points: storage backends (``chat_shell.storage``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._plugins import PluginGroup
from .contract import StorageProvider

if TYPE_CHECKING:
    from .._config import Settings

__all__ = ["available_storage", "create_storage", "storage_from_settings"]

STORAGE_GROUP = "chat_shell.storage"
_STORAGE: PluginGroup[StorageProvider] = PluginGroup(
    STORAGE_GROUP, StorageProvider, noun="storage backend", plugin="storage plugin"
)


def available_storage() -> list[str]:
    """Names of the installed storage backends."""
    return _STORAGE.names()


def create_storage(name: str, **options: Any) -> StorageProvider:
    """Make the storage backend registered as ``name`` with its options (``path``, ``url`` …)."""
    return _STORAGE.create(name, **options)


def storage_from_settings(settings: Settings) -> StorageProvider:
    """The backend ``settings.storage`` names, given the options the settings hold for it:
    ``storage_url``/``storage_api_key`` for ``remote``, ``storage_url`` for ``postgres``,
    nothing for ``memory``, and ``storage_path`` for the rest (file backends default to a place
    in the chat-shell home)."""
    name = settings.storage
    if name == "remote":
        return create_storage(name, url=settings.storage_url, api_key=settings.storage_api_key)
    if name == "postgres":
        return create_storage(name, url=settings.storage_url)
    if name == "memory":
        return create_storage(name)
    return create_storage(name, path=settings.storage_path)
