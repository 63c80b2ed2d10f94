"""Plugins found through entry points: the installed names of a group, and one made by name.

Storage backends (``chat_shell.storage``) and run stores (``chat_shell.runs``) are made here
from their options; the model router lists ``chat_shell.models`` here and imports a backend
only when it is first used.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar, cast

from ._errors import UserError

__all__ = ["PluginGroup", "plugin_entry_points"]

T = TypeVar("T")

# The distributions holding the plugins core knows by name but does not ship.
_INSTALL_HINTS = {"sqlite": "chat-shell-sqlite", "postgres": "chat-shell-postgres"}


def plugin_entry_points(group: str) -> dict[str, EntryPoint]:
    """The entry points of ``group`` by name (the first one of a name installed twice);
    nothing is imported."""
    found: dict[str, EntryPoint] = {}
    for entry_point in entry_points(group=group):
        found.setdefault(entry_point.name, entry_point)
    return found


@dataclass(frozen=True)
class PluginGroup(Generic[T]):
    """An entry-point group whose plugins are factories of ``kind`` taking keyword options;
    ``noun`` names one in errors ("unknown storage backend 'x'"), ``plugin`` names the
    plugin that made a wrong thing ("storage plugin 'x' did not return a StorageProvider")."""

    group: str
    # type[T] would refuse the abstract contracts (StorageProvider, RunStore): type checkers
    # take T from the annotation of the group instead (``PluginGroup[RunStore]``)
    kind: type[Any]
    noun: str
    plugin: str

    def names(self) -> list[str]:
        """Names of the installed plugins."""
        return sorted(plugin_entry_points(self.group))

    def create(self, name: str, **options: Any) -> T:
        """The plugin ``name`` made with the options that are not ``None``; ``UserError`` for
        an unknown name, options the factory does not take, or a result that is no ``kind``."""
        entry_point = plugin_entry_points(self.group).get(name)
        if entry_point is None:
            package = _INSTALL_HINTS.get(name)
            hint = f"; install it with: pip install {package}" if package else ""
            known = ", ".join(self.names()) or "none"
            raise UserError(f"unknown {self.noun} {name!r} (installed: {known}){hint}")
        factory = entry_point.load()
        given = {key: value for key, value in options.items() if value is not None}
        try:
            inspect.signature(factory).bind(**given)
        except TypeError as exc:
            raise UserError(f"{self.noun} {name!r} does not take these options: {exc}") from None
        except ValueError:  # no signature to read (a builtin): let the call say
            pass
        made = factory(**given)
        if not isinstance(made, self.kind):
            raise UserError(f"{self.plugin} {name!r} did not return a {self.kind.__name__}")
        return cast("T", made)
