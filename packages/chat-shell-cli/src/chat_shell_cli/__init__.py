"""chat-shell-cli: chat-shell in the terminal (console script ``chat-shell``)."""

from importlib.metadata import PackageNotFoundError, version

from ._main import main

try:
    __version__ = version("chat-shell-cli")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__", "main"]
