"""FastAPI dependencies and parameter types: the server state, the calling principal (override them
in tests) and the session-id path parameter."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ._auth import Principal
from ._errors import ApiError
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
    state.limiter.check(principal.owner)
    return principal


State = Annotated[ServerState, Depends(get_state)]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
SessionId = Annotated[str, Path(max_length=128, description="the session's id")]
