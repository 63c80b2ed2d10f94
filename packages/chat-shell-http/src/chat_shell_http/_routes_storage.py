"""``/api/v1/sessions``: the remote-storage protocol, over the server's own storage.

It is what chat-shell's ``remote`` storage backend speaks; each method of ``HistoryStorage``
is one call. Sessions belong to the API key that created them, as everywhere on this server.
"""

from __future__ import annotations

from typing import Annotated, Any

from chat_shell import NotFoundError, SessionInfo, validate_session_id
from fastapi import APIRouter, Query, Response

from ._auth import Principal
from ._deps import CurrentPrincipal, SessionId, State
from ._errors import ErrorBody
from ._schemas import AppendMessages, MessageList, SessionList, SessionUpdate
from ._state import ServerState

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["remote storage"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 404, 413, 422, 429, 503)
}


def _visible(info: SessionInfo, principal: Principal) -> SessionInfo:
    return info.model_copy(update={"owner": principal.visible_owner(info.owner)})


async def _existing(state: ServerState, session_id: str, principal: Principal) -> bool:
    """Whether the session exists; ``NotFoundError`` if it is someone else's."""
    validate_session_id(session_id)
    try:
        await state.session_for(session_id, principal)
    except NotFoundError:
        if principal.owner is None:
            return False
        try:
            await state.history.get_session(session_id)
        except NotFoundError:
            return False
        raise
    return True


@router.get("/sessions", response_model=SessionList, responses=_ERRORS)
async def storage_list_sessions(
    state: State,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=0, le=10_000)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    owner: Annotated[str | None, Query(max_length=200)] = None,
) -> SessionList:
    """`list_sessions(limit, offset, owner)`."""
    sessions = await state.history.list_sessions(
        limit=limit, offset=offset, owner=principal.storage_owner(owner)
    )
    return SessionList(
        sessions=[_visible(s, principal) for s in sessions], limit=limit, offset=offset
    )


@router.get("/sessions/{session_id}", response_model=SessionInfo, responses=_ERRORS)
async def storage_get_session(
    session_id: SessionId, state: State, principal: CurrentPrincipal
) -> SessionInfo:
    """`get_session(session_id)`."""
    return _visible(await state.session_for(session_id, principal), principal)


@router.patch("/sessions/{session_id}", response_model=SessionInfo, responses=_ERRORS)
async def storage_update_session(
    session_id: SessionId, body: SessionUpdate, state: State, principal: CurrentPrincipal
) -> SessionInfo:
    """`update_session(session_id, title=, metadata=)`."""
    await state.session_for(session_id, principal)
    info = await state.history.update_session(session_id, title=body.title, metadata=body.metadata)
    return _visible(info, principal)


@router.delete(
    "/sessions/{session_id}", status_code=204, response_class=Response, responses=_ERRORS
)
async def storage_delete_session(
    session_id: SessionId, state: State, principal: CurrentPrincipal
) -> None:
    """`delete_session(session_id)`."""
    await state.session_for(session_id, principal)
    await state.history.delete_session(session_id)


@router.get("/sessions/{session_id}/messages", response_model=MessageList, responses=_ERRORS)
async def storage_get_messages(
    session_id: SessionId,
    state: State,
    principal: CurrentPrincipal,
    limit: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
) -> MessageList:
    """`get_history(session_id, limit)`: an unknown session has no messages."""
    if not await _existing(state, session_id, principal):
        return MessageList(messages=[])
    return MessageList(messages=await state.history.get_history(session_id, limit))


@router.post(
    "/sessions/{session_id}/messages",
    status_code=204,
    response_class=Response,
    responses=_ERRORS,
)
async def storage_append_messages(
    session_id: SessionId, body: AppendMessages, state: State, principal: CurrentPrincipal
) -> None:
    """`append_messages(session_id, messages, owner=)`: all or none, creating the session."""
    await _existing(state, session_id, principal)
    await state.history.append_messages(
        session_id, body.messages, owner=principal.storage_owner(body.owner)
    )


@router.delete(
    "/sessions/{session_id}/messages",
    status_code=204,
    response_class=Response,
    responses=_ERRORS,
)
async def storage_clear_history(
    session_id: SessionId, state: State, principal: CurrentPrincipal
) -> None:
    """`clear_history(session_id)`: the session stays, with no messages."""
    if await _existing(state, session_id, principal):
        await state.history.clear_history(session_id)
