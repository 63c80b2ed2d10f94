"""Every provider that is not OpenAI-protocol, through litellm (imported on first use only).

litellm is an optional extra of chat-shell-core (``chat-shell-core[litellm]``); without it the
``openai/`` path still works and every other provider says what to install.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

from .._errors import ModelError, UserError
from .backend import (
    ChunkAccumulator,
    ModelBackend,
    ModelPart,
    ModelRequest,
    parse_retry_after,
    stream_error,
)
from .openai_backend import is_retryable_status

__all__ = ["INSTALL_LITELLM", "LiteLLMBackend", "import_litellm", "require_litellm"]

INSTALL_LITELLM = "pip install 'chat-shell-core[litellm]'"

_litellm: ModuleType | None = None


def _missing(model: str) -> UserError:
    return UserError(
        f"{model} is called through litellm, which is not installed: {INSTALL_LITELLM} "
        "(openai/… models work without it)"
    )


def require_litellm(model: str) -> None:
    """Raise the ``UserError`` naming the install command if litellm is not installed
    (without importing it)."""
    if _litellm is None and importlib.util.find_spec("litellm") is None:
        raise _missing(model)


def import_litellm(model: str = "this model") -> ModuleType:
    """Import litellm once, offline (its bundled cost map) and quiet."""
    global _litellm
    if _litellm is None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        try:
            import litellm
        except ImportError as exc:
            raise _missing(model) from exc
        litellm.suppress_debug_info = True
        litellm.telemetry = False
        _litellm = litellm
    return _litellm


_RETRYABLE_NAMES = frozenset(
    {
        "APIConnectionError",
        "Timeout",
        "RateLimitError",
        "ServiceUnavailableError",
        "InternalServerError",
        "BadGatewayError",
    }
)
_CODES = {
    "AuthenticationError": "authentication",
    "PermissionDeniedError": "authentication",
    "RateLimitError": "rate_limited",
    "Timeout": "timeout",
    "ContextWindowExceededError": "context_length_exceeded",
    "NotFoundError": "model_not_found",
}


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (litellm keeps the cause in ``original_exception``)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not other for other in seen):
        seen.append(current)
        wrapped = getattr(current, "original_exception", None)
        current = (
            wrapped if isinstance(wrapped, BaseException) else current.__cause__
        ) or current.__context__
    return seen


def _retry_after(chain: list[BaseException]) -> float | None:
    for exc in chain:
        headers = getattr(exc, "litellm_response_headers", None)
        response = getattr(exc, "response", None)
        for source in (headers, getattr(response, "headers", None)):
            try:
                value = source.get("retry-after") if source is not None else None
            except (AttributeError, TypeError):
                continue
            seconds = parse_retry_after(value if isinstance(value, str) else None)
            if seconds is not None:
                return seconds
    return None


def _in_stream_error(chain: list[BaseException]) -> dict[str, Any] | None:
    """The provider's ``error`` object when the failure was an error event inside a 200
    stream (the OpenAI SDK raises it as an ``APIError`` without a response)."""
    for exc in reversed(chain):
        body = getattr(exc, "body", None)
        if isinstance(body, dict) and getattr(exc, "response", None) is None:
            return body
    return None


def _to_model_error(exc: Exception, model: str, api_key: str | None) -> ModelError:
    chain = _chain(exc)
    streamed = _in_stream_error(chain)
    if streamed is not None:  # judged as the openai/ path judges it
        error = stream_error(streamed, model, api_key)
        error.model = model
        return error
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    name = type(exc).__name__
    retryable = name in _RETRYABLE_NAMES or (status is not None and is_retryable_status(status))
    text = str(getattr(exc, "message", "") or exc)
    if api_key:
        text = text.replace(api_key, "****")
    return ModelError(
        f"{model}: {name}: {text[:300]}",
        retryable=retryable,
        status_code=status,
        model=model,
        retry_after=_retry_after(chain),
        code=_CODES.get(name),
    )


def _provider_reported_usage(response: Any) -> bool:
    """Whether the provider sent usage: litellm fills in an estimate when it did not, and
    chat-shell reports only what the provider counted (as the openai/ path does)."""
    chunks = getattr(response, "chunks", None)
    if not isinstance(chunks, list):
        return True
    return any(getattr(chunk, "usage", None) for chunk in chunks)


class LiteLLMBackend(ModelBackend):
    """Streams through ``litellm.acompletion``; retries are ours, so litellm's are off."""

    def check_model(self, model: str) -> None:
        require_litellm(model)

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelPart]:
        litellm = import_litellm(request.model)
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "timeout": request.timeout,
            "num_retries": 0,
            # A setting a model does not take (temperature on o3, say) is left out, as the
            # openai/ path leaves it out, rather than failing every request.
            "drop_params": True,
        }
        for key in ("tools", "temperature", "max_tokens", "api_base", "api_key"):
            value = getattr(request, key)
            if value is not None:
                kwargs[key] = value
        accumulator = ChunkAccumulator(request.model, request.api_key)
        try:
            response = await litellm.acompletion(**kwargs)
            async for chunk in response:
                for part in accumulator.feed(chunk.model_dump(exclude_none=True)):
                    yield part
        except ModelError:
            raise
        except Exception as exc:  # litellm raises its own tree plus raw httpx/aiohttp errors
            raise _to_model_error(exc, request.model, request.api_key) from exc
        if not _provider_reported_usage(response):
            accumulator.usage = None
        for part in accumulator.finish():
            yield part
