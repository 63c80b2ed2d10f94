"""Run stores found through entry points (``chat_shell.runs``), and the one settings choose."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._plugins import PluginGroup
from .contract import RunStore

if TYPE_CHECKING:
    from .._config import Settings

__all__ = ["available_run_stores", "create_run_store", "run_store_from_settings"]

RUNS_GROUP = "chat_shell.runs"
_RUN_STORES: PluginGroup[RunStore] = PluginGroup(
    RUNS_GROUP, RunStore, noun="run store", plugin="run store plugin"
)


def available_run_stores() -> list[str]:
    """Names of the installed run stores."""
    return _RUN_STORES.names()


def create_run_store(name: str, **options: Any) -> RunStore:
    """Make the run store registered as ``name`` with its options (``path``, ``url`` …)."""
    return _RUN_STORES.create(name, **options)


def run_store_name(settings: Settings) -> str:
    """The run store ``settings`` choose: ``run_store`` if set, else the one of the history
    backend's name when one is installed (``sqlite`` → ``sqlite``), else ``memory``."""
    if settings.run_store:
        return settings.run_store
    if settings.storage in available_run_stores():
        return settings.storage
    return "memory"


def run_store_from_settings(settings: Settings) -> RunStore:
    """The run store ``settings`` choose (``run_store_name``), given the same options as the
    history backend: ``storage_url`` for ``postgres``, ``storage_path`` for file stores."""
    name = run_store_name(settings)
    if name == "memory":
        return create_run_store(name)
    # storage_url names a database server: the file stores (sqlite) take only the path, and
    # the remote store has a URL of its own
    if settings.storage_url and name not in ("remote", "sqlite"):
        return create_run_store(name, path=settings.storage_path, url=settings.storage_url)
    return create_run_store(name, path=settings.storage_path)
