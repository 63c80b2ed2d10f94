"""The chat page: ``/`` and its files under ``/static/``, package data served from memory.

Only the files shipped in ``chat_shell_http/static`` are served, from a table read once, so no
request path ever reaches the file system. The page is public (it holds no data; every API call
it makes needs a key when the server has keys). Its answers carry a strict policy: scripts,
styles, images and connections from this server only, no frames, no form submissions, and HTML
assigned only through DOMPurify's Trusted Types policy — model output is untrusted.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ._errors import ApiError

__all__ = ["CONTENT_SECURITY_POLICY", "router"]

router = APIRouter(include_in_schema=False)

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types dompurify",
    ]
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-cache",  # revalidate (ETag): an upgraded server serves its own page
}
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class _File:
    body: bytes
    media_type: str
    etag: str


def _walk(folder: Traversable, prefix: str) -> dict[str, _File]:
    found: dict[str, _File] = {}
    for entry in folder.iterdir():
        name = prefix + entry.name
        if entry.is_dir():
            found.update(_walk(entry, name + "/"))
            continue
        media_type = _TYPES.get("." + entry.name.rpartition(".")[2])
        if media_type is not None:
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            found[name] = _File(body, media_type, etag)
    return found


@functools.cache
def _static_files() -> dict[str, _File]:
    return _walk(files("chat_shell_http").joinpath("static"), "")


def _serve(name: str, request: Request) -> Response:
    item = _static_files().get(name)
    if item is None:
        raise ApiError(404, "not_found", "no such file")
    headers = {**_HEADERS, "ETag": item.etag}
    if request.headers.get("if-none-match") == item.etag:
        return Response(status_code=304, headers=headers)
    return Response(item.body, media_type=item.media_type, headers=headers)


@router.get("/")
async def page(request: Request) -> Response:
    """The chat page (docs/playground.md)."""
    return _serve("index.html", request)


@router.get("/static/{name:path}")
async def static_file(name: str, request: Request) -> Response:
    return _serve(name, request)
