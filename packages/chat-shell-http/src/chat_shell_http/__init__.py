"""chat-shell-http: chat-shell as an HTTP service.

``chat-shell serve`` (or ``python -m chat_shell_http``) runs it; ``create_app(settings)`` builds
the FastAPI application for your own ASGI server::

    from chat_shell import load_settings
    from chat_shell_http import create_app

    app = create_app(load_settings())

See docs/http.md for the endpoints, the event stream, resuming, cancelling and auth.
"""

from importlib.metadata import PackageNotFoundError, version

from ._app import create_app
from ._auth import Principal
from ._connections import HTTPProtocol
from ._errors import ErrorBody, ErrorInfo
from ._schemas import ChatMessage, ChatRequest, RunInfo
from ._settings import ServerSettings, hash_api_key
from ._sse import encode_event

try:
    __version__ = version("chat-shell-http")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "ChatMessage",
    "ChatRequest",
    "ErrorBody",
    "ErrorInfo",
    "HTTPProtocol",
    "Principal",
    "RunInfo",
    "ServerSettings",
    "__version__",
    "create_app",
    "encode_event",
    "hash_api_key",
]
