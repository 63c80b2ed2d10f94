"""``/v1/health``: liveness, with storage reachability (no API key needed); ``/v1/config``: what
a client may choose (the chat page's model picker)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ._deps import CurrentPrincipal, State
from ._errors import ErrorBody
from ._schemas import HealthInfo, ServerConfig

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get(
    "/v1/health",
    response_model=HealthInfo,
    responses={503: {"model": HealthInfo, "description": "storage unreachable"}},
)
async def health(state: State) -> JSONResponse:
    """200 when the server and its storage answer; 503 (same body) when storage does not."""
    try:
        reachable = await asyncio.wait_for(state.storage.health(), timeout=5.0)
    except TimeoutError:
        reachable = False
    from . import __version__

    info = HealthInfo(
        status="ok" if reachable else "degraded",
        storage="reachable" if reachable else "unreachable",
        version=__version__,
        active_runs=state.runs.active_count,
    )
    return JSONResponse(info.model_dump(), status_code=200 if reachable else 503)


@router.get(
    "/v1/config",
    response_model=ServerConfig,
    responses={status: {"model": ErrorBody} for status in (401, 429)},
)
async def config(state: State, _principal: CurrentPrincipal) -> ServerConfig:
    """The default model and the models a request may name (names or fnmatch patterns)."""
    return ServerConfig(model=state.settings.model, allowed_models=state.allowed_models)
