"""FastAPI dependencies and parameter types: the server state, the calling principal (override them
in tests) and the session-id path parameter."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ._auth import Principal
from ._errors import ApiError
from ._settings import is_loopback
from ._state import ServerState

__all__ = ["CurrentPrincipal", "SessionId", "State", "get_principal", "get_state"]

_bearer = HTTPBearer(auto_error=False, description="an API key of the server")


async def get_state(request: Request) -> ServerState:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, a hop per request
    state: ServerState = request.app.state.chat_shell
    return state


async def get_principal(
    request: Request,
    state: Annotated[ServerState, Depends(get_state)],
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, authenticated by its Bearer key and counted against its rate limit."""
    principal = state.auth.authenticate(request.headers.get("authorization"))
    if principal is None:
        raise ApiError(
            401,
            "unauthorized",
            "missing or unknown API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not _exempt(request, state, principal):
        state.limiter.check(principal.owner)
    return principal


def _exempt(request: Request, state: ServerState, principal: Principal) -> bool:
    """The anonymous caller of a server without API keys, calling from this machine, is not
    rate-limited (unless ``rate_limit_loopback``): it is the machine's own user or script."""
    server = state.server
    if principal.owner is not None or server.auth_enabled or server.rate_limit_loopback:
        return False
    client = request.client
    return client is not None and is_loopback(client.host)


State = Annotated[ServerState, Depends(get_state)]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
SessionId = Annotated[str, Path(max_length=128, description="the session's id")]
