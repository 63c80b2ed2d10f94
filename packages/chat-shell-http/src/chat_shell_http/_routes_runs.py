"""``/v1/response``: start a run, watch or resume it, cancel it."""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

from chat_shell import ChatEvent, EventType, NotFoundError
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from ._deps import CurrentPrincipal, State
from ._errors import ApiError, ErrorBody
from ._runs import RunRecord
from ._schemas import ApprovalAnswer, ApprovalDecision, ChatRequest, RunInfo
from ._sse import stream_response
from ._state import ServerState

__all__ = ["router"]

router = APIRouter(tags=["runs"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 404, 409, 413, 422, 429, 503)
}
_SSE = {
    "text/event-stream": {
        "schema": {"type": "string", "description": "SSE frames; data: a ChatEvent as JSON"}
    }
}
RunId = Annotated[str, Path(max_length=200, description="the run's id (`run_id`)")]


def _run_json(record: RunRecord) -> JSONResponse:
    info = RunInfo.from_info(record.current(), record.session_id)
    return JSONResponse(info.model_dump(mode="json"))


def _stream(state: ServerState, record: RunRecord, after: int) -> Response:
    server = state.server
    return stream_response(
        record,
        after=after,
        registry=state.runs,
        buffer_events=server.client_buffer_events,
        keepalive_seconds=server.keepalive_seconds,
        send_timeout=server.send_timeout_seconds,
    )


@router.post(
    "/v1/response",
    response_model=RunInfo,
    responses={200: {"content": _SSE}, **_ERRORS},
    summary="Start a run",
)
async def create_response(body: ChatRequest, state: State, principal: CurrentPrincipal) -> Response:
    """Start a run of the agent on the given messages.

    With `stream: true` (the default) the answer is an SSE stream of the run's events; with
    `stream: false` the request waits for the end and answers the run's final state. The run
    goes on if the client disconnects (unless `cancel_on_disconnect`); find it again with
    `GET /v1/response/{run_id}`. A session already running a turn answers 409
    `session_busy`; a server shutting down answers 503 `shutting_down`.
    """
    record = await state.start_run(body, principal)
    if body.stream:
        return _stream(state, record, -1)
    assert record.run is not None
    await record.run.wait()
    return _run_json(record)


# A seq as the stream wrote it: plain ASCII digits, no sign, space, "_" or leading zero
# (int() would take "0_0", " 1", "+1" and "١"); "-1" asks for the whole run.
_SEQ = re.compile(r"-1|0|[1-9][0-9]{0,17}")


def _resume_point(record: RunRecord, last_event_id: str | None, after: str | None) -> int:
    given = last_event_id if last_event_id is not None else after
    if given is None:
        return -1
    if not _SEQ.fullmatch(given):
        name = "Last-Event-ID" if last_event_id is not None else "after"
        raise ApiError(400, "bad_last_event_id", f"{name} must be the seq of an event (digits)")
    seq = int(given)
    last = record.last_seq
    # A run in progress in another process may be ahead of what it has written to the store:
    # the stream then waits for the event named.
    if seq > last and (record.run is not None or record.done):
        raise ApiError(
            400,
            "bad_last_event_id",
            f"no event {seq} in this run (its last event so far is {last})",
        )
    return seq


@router.get(
    "/v1/response/{run_id}",
    response_model=RunInfo,
    responses={200: {"content": _SSE}, **_ERRORS},
    summary="Get a run's status, or (re)attach to its stream",
)
async def get_response(
    run_id: RunId,
    request: Request,
    state: State,
    principal: CurrentPrincipal,
    stream: Annotated[bool | None, Query(description="true: stream the events (SSE)")] = None,
    after: Annotated[
        str | None,
        Query(description="resume after this seq (like Last-Event-ID; -1: from the start)"),
    ] = None,
    last_event_id: Annotated[str | None, Header(description="resume after this seq")] = None,
) -> Response:
    """The run's status, timestamps, output so far and usage; or, with
    `Accept: text/event-stream` or `?stream=true`, its events as SSE, resuming after
    `Last-Event-ID` (or `?after=`) with no gap and no duplicate."""
    record = await state.runs.get(run_id, principal)
    wants_stream = (
        stream if stream is not None else ("text/event-stream" in request.headers.get("accept", ""))
    )
    if not wants_stream:
        return _run_json(record)
    return _stream(state, record, _resume_point(record, last_event_id, after))


@router.delete(
    "/v1/response/{run_id}",
    response_model=RunInfo,
    responses=_ERRORS,
    summary="Cancel a run",
)
async def cancel_response(run_id: RunId, state: State, principal: CurrentPrincipal) -> Response:
    """Stop the run at once (model request and tools); the partial answer is stored marked
    `cancelled` and watchers get a final `complete` event with status `cancelled`. Cancelling a
    cancelled run answers the same again; a run that ended otherwise answers 409."""
    runs = state.runs
    record = await runs.get(run_id, principal)
    info = record.current()
    if info.done and info.status != "cancelled":
        raise ApiError(409, "run_finished", f"the run already ended ({info.status})")
    await runs.manager.cancel(run_id)
    final = await runs.manager.wait(run_id)  # cancelled, or how it ended meanwhile
    return _run_json(RunRecord(final))


async def _waiting_calls(state: ServerState, record: RunRecord) -> dict[str, ChatEvent]:
    """The run's ``approval_required`` events by call id (from memory if it runs here)."""
    events = (
        record.run.events
        if record.run is not None
        else await state.runs.manager.store.read_events(record.run_id)
    )
    return {
        str(event.data.get("id")): event
        for event in events
        if event.event_type == EventType.APPROVAL_REQUIRED
    }


@router.post(
    "/v1/response/{run_id}/approvals",
    response_model=ApprovalDecision | list[ApprovalDecision],
    responses=_ERRORS,
    summary="Approve or refuse a tool call the run waits on",
)
async def answer_approvals(
    run_id: RunId,
    body: ApprovalAnswer | list[ApprovalAnswer],
    state: State,
    principal: CurrentPrincipal,
) -> Response:
    """Answer the `approval_required` event(s) of a run: `approved: true` runs the tool,
    `false` tells the model it was not approved. Only the key that started the run may
    answer (404 for any other, as for an unknown run or call); a call already answered, past
    its `expires_at`, or of a run that ended answers 409 `approval_closed`. A list answers
    several calls: all are checked before any is recorded."""
    answers = body if isinstance(body, list) else [body]
    if not answers:
        raise ApiError(400, "bad_request", "give at least one answer")
    record = await state.runs.get(run_id, principal)
    waiting = await _waiting_calls(state, record)
    store = state.runs.manager.store
    now = time.time()
    for answer in answers:
        event = waiting.get(answer.call_id)
        if event is None:
            raise NotFoundError(
                f"run {run_id} has no tool call {answer.call_id} waiting for approval"
            )
        if record.done:
            raise ApiError(
                409, "approval_closed", f"the run already ended ({record.current().status})"
            )
        expires_at = event.data.get("expires_at")
        if expires_at is None or now >= float(expires_at):
            raise ApiError(
                409, "approval_closed", f"the wait for call {answer.call_id} is over (it expired)"
            )
        if await store.approval_answer(run_id, answer.call_id) is not None:
            raise ApiError(409, "approval_closed", f"call {answer.call_id} is already answered")
    decisions = []
    for answer in answers:
        if not await store.answer_approval(run_id, answer.call_id, answer.approved):
            raise ApiError(
                409,
                "approval_closed",
                f"call {answer.call_id} is already answered, or the run ended",
            )
        decisions.append(
            ApprovalDecision(
                run_id=run_id,
                call_id=answer.call_id,
                name=str(waiting[answer.call_id].data.get("name")),
                approved=answer.approved,
            ).model_dump(mode="json")
        )
    return JSONResponse(decisions if isinstance(body, list) else decisions[0])
