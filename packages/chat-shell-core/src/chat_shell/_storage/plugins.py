"""Plugins found through entry points: storage backends (``chat_shell.storage``)."""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from .._errors import UserError
from .contract import StorageProvider

if TYPE_CHECKING:
    from .._config import Settings

__all__ = ["available_storage", "create_storage", "storage_from_settings"]

STORAGE_GROUP = "chat_shell.storage"
_INSTALL_HINTS = {"sqlite": "chat-shell-sqlite", "postgres": "chat-shell-postgres"}


def available_storage() -> list[str]:
    """Names of the installed storage backends."""
    return sorted({ep.name for ep in entry_points(group=STORAGE_GROUP)})


def create_storage(name: str, **options: Any) -> StorageProvider:
    """Make the storage backend registered as ``name`` with its options (``path``, ``url`` …)."""
    for entry_point in entry_points(group=STORAGE_GROUP, name=name):
        factory = entry_point.load()
        given = {k: v for k, v in options.items() if v is not None}
        try:
            inspect.signature(factory).bind(**given)
        except TypeError as exc:
            raise UserError(
                f"storage backend {name!r} does not take these options: {exc}"
            ) from None
        except ValueError:  # no signature to read (a builtin): let the call say
            pass
        provider = factory(**given)
        if not isinstance(provider, StorageProvider):
            raise UserError(f"storage plugin {name!r} did not return a StorageProvider")
        return provider
    hint = (
        f"; install it with: pip install {_INSTALL_HINTS[name]}" if name in _INSTALL_HINTS else ""
    )
    known = ", ".join(available_storage()) or "none"
    raise UserError(f"unknown storage backend {name!r} (installed: {known}){hint}")


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
