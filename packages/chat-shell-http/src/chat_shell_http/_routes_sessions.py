"""``/v1/sessions``: list sessions, read a session's history, delete a session."""

from __future__ import annotations

from typing import Annotated, Any

from chat_shell import SessionInfo, session_usage
from fastapi import APIRouter, Query, Response

from ._deps import CurrentPrincipal, SessionId, State
from ._errors import ErrorBody
from ._schemas import HistoryPage, SessionSummary, SessionSummaryList
from ._state import ServerState

__all__ = ["router"]

router = APIRouter(tags=["sessions"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 404, 409, 422, 429, 503)
}


async def _summary(state: ServerState, info: SessionInfo, public_id: str) -> SessionSummary:
    usage = await session_usage(state.history, info.id)
    return SessionSummary(**{**info.model_dump(), "id": public_id}, usage=usage)


@router.get("/v1/sessions", response_model=SessionSummaryList, responses=_ERRORS)
async def list_sessions(
    state: State,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> SessionSummaryList:
    """Your sessions, most recently updated first, one page at a time, each with its usage."""
    sessions = await state.history.list_sessions(limit=limit, offset=offset, owner=principal.owner)
    shown = [await _summary(state, s, principal.public_session_id(s.id)) for s in sessions]
    return SessionSummaryList(sessions=shown, limit=limit, offset=offset)


@router.get("/v1/sessions/{session_id}", response_model=SessionSummary, responses=_ERRORS)
async def get_session(
    session_id: SessionId, state: State, principal: CurrentPrincipal
) -> SessionSummary:
    """The session: title, times, message count and its usage (tokens by model, cost)."""
    _, info = await state.session_for(session_id, principal)
    return await _summary(state, info, session_id)


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
