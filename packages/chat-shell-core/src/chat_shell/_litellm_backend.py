"""Every provider that is not OpenAI-protocol, through litellm (imported on first use only)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

from ._errors import ModelError, UserError
from ._model_backend import ChunkAccumulator, ModelBackend, ModelPart, ModelRequest
from ._openai_backend import is_retryable_status

__all__ = ["LiteLLMBackend", "import_litellm"]

_litellm: ModuleType | None = None


def import_litellm() -> ModuleType:
    """Import litellm once, offline (its bundled cost map) and quiet."""
    global _litellm
    if _litellm is None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        try:
            import litellm
        except ImportError as exc:  # pragma: no cover - litellm is a dependency of core
            raise UserError(
                "this model needs litellm: pip install 'chat-shell-core' (it depends on litellm)"
            ) from exc
        litellm.suppress_debug_info = True
        litellm.telemetry = False
        _litellm = litellm
    return _litellm


def _to_model_error(exc: Exception, model: str, api_key: str | None) -> ModelError:
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    name = type(exc).__name__
    retryable = name in {
        "APIConnectionError",
        "Timeout",
        "RateLimitError",
        "ServiceUnavailableError",
        "InternalServerError",
        "BadGatewayError",
    } or (status is not None and is_retryable_status(status))
    text = str(getattr(exc, "message", "") or exc)
    if api_key:
        text = text.replace(api_key, "****")
    return ModelError(
        f"{model}: {name}: {text[:300]}", retryable=retryable, status_code=status, model=model
    )


class LiteLLMBackend(ModelBackend):
    """Streams through ``litellm.acompletion``; retries are ours, so litellm's are off."""

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelPart]:
        litellm = import_litellm()
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "timeout": request.timeout,
            "num_retries": 0,
        }
        for key in ("tools", "temperature", "max_tokens", "api_base", "api_key"):
            value = getattr(request, key)
            if value is not None:
                kwargs[key] = value
        accumulator = ChunkAccumulator()
        try:
            response = await litellm.acompletion(**kwargs)
            async for chunk in response:
                for part in accumulator.feed(chunk.model_dump(exclude_none=True)):
                    yield part
        except ModelError:
            raise
        except Exception as exc:  # litellm raises its own tree plus raw httpx/aiohttp errors
            raise _to_model_error(exc, request.model, request.api_key) from exc
        for part in accumulator.finish():
            yield part
