"""``/v1/health``: liveness, with storage reachability (no API key needed)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ._deps import State
from ._schemas import HealthInfo

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
