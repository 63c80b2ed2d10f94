"""``/v1/sessions``: list sessions, read a session's history, delete a session."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from ._deps import CurrentPrincipal, SessionId, State
from ._errors import ErrorBody
from ._schemas import HistoryPage, SessionList

__all__ = ["router"]

router = APIRouter(tags=["sessions"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 404, 409, 422, 429, 503)
}


@router.get("/v1/sessions", response_model=SessionList, responses=_ERRORS)
async def list_sessions(
    state: State,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> SessionList:
    """Your sessions, most recently updated first, one page at a time."""
    sessions = await state.history.list_sessions(limit=limit, offset=offset, owner=principal.owner)
    shown = [s.model_copy(update={"id": principal.public_session_id(s.id)}) for s in sessions]
    return SessionList(sessions=shown, limit=limit, offset=offset)


@router.get("/v1/sessions/{session_id}/history", response_model=HistoryPage, responses=_ERRORS)
async def session_history(
    session_id: SessionId,
    state: State,
    principal: CurrentPrincipal,
    limit: Annotated[int | None, Query(ge=0, le=100_000)] = None,
) -> HistoryPage:
    """The session's messages, oldest first (with `limit`: the last `limit`)."""
    key, _ = await state.session_for(session_id, principal)
    messages = await state.history.get_history(key, limit)
    return HistoryPage(session_id=session_id, messages=messages)


@router.delete(
    "/v1/sessions/{session_id}", status_code=204, response_class=Response, responses=_ERRORS
)
async def delete_session(session_id: SessionId, state: State, principal: CurrentPrincipal) -> None:
    """Delete the session and its history (409 while a run is in progress in it)."""
    key, _ = await state.session_for(session_id, principal)
    await state.runs.check_session_free(key)  # 409 session_busy while a run is in progress
    await state.history.delete_session(key)
