"""The built-in tools.

``calculator``, ``current_time`` and ``fetch_url`` are ready to use; the file tools and
``web_search`` need configuration, so they come from factories (``make_file_tools(root)``,
``make_web_search(settings)``). All of them are also registered through the entry-point group
``chat_shell.tools``, like any plugin, and ``ToolRegistry.default(settings)`` builds them from the
settings. Modules load on first use. See docs/tools.md for each tool's limits.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._tools import Tool
    from ._calculator import calculator
    from ._clock import current_time
    from ._files import make_file_tools
    from ._web import RateLimiter, html_to_text, make_fetch_url, make_web_search

    fetch_url: Tool

__all__ = [
    "RateLimiter",
    "calculator",
    "current_time",
    "fetch_url",
    "html_to_text",
    "make_fetch_url",
    "make_file_tools",
    "make_web_search",
]

_MODULES = {
    "RateLimiter": "._web",
    "calculator": "._calculator",
    "current_time": "._clock",
    "html_to_text": "._web",
    "make_fetch_url": "._web",
    "make_file_tools": "._files",
    "make_web_search": "._web",
}


def __getattr__(name: str) -> Any:
    if name == "fetch_url":  # the default-limits instance, made once
        value: Any = import_module("._web", __name__).make_fetch_url()
    elif name in _MODULES:
        value = getattr(import_module(_MODULES[name], __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
