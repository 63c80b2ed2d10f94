"""``/api/v1/sessions``: the remote-storage protocol, over the server's own storage.

It is what chat-shell's ``remote`` storage backend speaks; each method of ``HistoryStorage``
is one call. Session ids are per API key, as everywhere on this server: another key's session
is, to the caller, one that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any

from chat_shell import SessionInfo
from fastapi import APIRouter, Query, Response

from ._deps import CurrentPrincipal, SessionId, State
from ._errors import ErrorBody
from ._schemas import AppendMessages, MessageList, SessionList, SessionUpdate

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["remote storage"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 404, 413, 422, 429, 503)
}


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
        sessions=[state.visible(s, principal) for s in sessions], limit=limit, offset=offset
    )


@router.get("/sessions/{session_id}", response_model=SessionInfo, responses=_ERRORS)
async def storage_get_session(
    session_id: SessionId, state: State, principal: CurrentPrincipal
) -> SessionInfo:
    """`get_session(session_id)`."""
    _, info = await state.session_for(session_id, principal)
    return state.visible(info, principal)


@router.patch("/sessions/{session_id}", response_model=SessionInfo, responses=_ERRORS)
async def storage_update_session(
    session_id: SessionId, body: SessionUpdate, state: State, principal: CurrentPrincipal
) -> SessionInfo:
    """`update_session(session_id, title=, metadata=)`."""
    key, _ = await state.session_for(session_id, principal)
    info = await state.history.update_session(key, title=body.title, metadata=body.metadata)
    return state.visible(info, principal)


@router.delete(
    "/sessions/{session_id}", status_code=204, response_class=Response, responses=_ERRORS
)
async def storage_delete_session(
    session_id: SessionId, state: State, principal: CurrentPrincipal
) -> None:
    """`delete_session(session_id)` (409 `session_busy` while a run is in progress in it)."""
    key, _ = await state.session_for(session_id, principal)
    await state.runs.check_session_free(key)
    await state.history.delete_session(key)


@router.get("/sessions/{session_id}/messages", response_model=MessageList, responses=_ERRORS)
async def storage_get_messages(
    session_id: SessionId,
    state: State,
    principal: CurrentPrincipal,
    limit: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
) -> MessageList:
    """`get_history(session_id, limit)`: an unknown session has no messages."""
    key, info = await state.find_session(session_id, principal)
    if info is None:
        return MessageList(messages=[])
    return MessageList(messages=await state.history.get_history(key, limit))


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
    key, _ = await state.find_session(session_id, principal)
    await state.history.append_messages(
        key, body.messages, owner=principal.storage_owner(body.owner)
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
    """`clear_history(session_id)`: the session stays, with no messages (409
    `session_busy` while a run is in progress in it)."""
    key, info = await state.find_session(session_id, principal)
    if info is not None:
        await state.runs.check_session_free(key)
        await state.history.clear_history(key)
