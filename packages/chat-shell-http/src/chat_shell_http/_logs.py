"""Secrets out of the server's logs: credentials a client put in a query string.

Keys belong in ``Authorization``; one sent as ``?api_key=…`` is refused (401) but would still be
written verbatim by the access log. Every record of uvicorn's and the server's loggers has the
values of secret-looking query parameters replaced before any handler formats it.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

__all__ = ["LOGGERS", "install_log_redaction", "redact_query_secrets"]

LOGGERS = ("uvicorn.access", "uvicorn.error", "chat_shell_http")
REDACTED = "[redacted]"

# A query parameter: after "?" or "&" (or ";"), a name, "=", a value up to the next separator.
_PARAM = re.compile(r"(?P<lead>[?&;](?P<name>[^=&;#?\s\"]+)=)(?P<value>[^&;#\s\"]*)")
# Names that usually carry a credential: api_key, apikey, access_token, key, token, secret, …
_SECRET_NAME = re.compile(r"key|token|secret|pass|pwd|auth|sig|credential|session", re.I)


def redact_query_secrets(text: str) -> str:
    """``text`` with the value of every secret-looking query parameter replaced."""
    if "=" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        name = unquote_plus(match["name"])
        if _SECRET_NAME.search(name) and match["value"]:
            return match["lead"] + REDACTED
        return match[0]

    return _PARAM.sub(replace, text)


class _QuerySecretFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # The arguments are redacted one by one: uvicorn's access formatter unpacks them.
        args = record.args
        if isinstance(args, tuple) and args:
            record.args = tuple(redact_query_secrets(a) if isinstance(a, str) else a for a in args)
        elif isinstance(args, dict) and args:
            record.args = {
                k: redact_query_secrets(v) if isinstance(v, str) else v for k, v in args.items()
            }
        elif isinstance(record.msg, str):
            record.msg = redact_query_secrets(record.msg)
        return True


_FILTER = _QuerySecretFilter()


def install_log_redaction() -> None:
    """Add the filter to uvicorn's and the server's loggers (once; adding it again is a no-op)."""
    for name in LOGGERS:
        logging.getLogger(name).addFilter(_FILTER)
