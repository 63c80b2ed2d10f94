"""What a session cost: token totals from its stored messages, priced by the local model table.

Every model answer is stored with ``metadata["model"]`` and ``metadata["usage"]`` (the
provider's own counts); the totals are derived from those, so there is nothing extra to
store and a backend that keeps messages can answer. Prices are the list prices of
litellm's table (``_models/model_table.py``, no network), USD per token, without cache or
batch discounts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from ._messages import Message
    from ._storage.contract import HistoryStorage

__all__ = ["ModelUsage", "SessionUsage", "session_usage"]

UNKNOWN_MODEL = "unknown"


class ModelUsage(BaseModel):
    """Tokens one model read and wrote in a session, and what that cost."""

    calls: int = Field(default=0, description="model answers that reported usage")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float | None = Field(
        default=None, description="USD at list price; null when the price table lacks the model"
    )


class SessionUsage(ModelUsage):
    """A session's totals over every model it used, and each model's share (``models``).

    ``cost`` is the sum over the models, and null unless every model's price is known (a
    partial sum would understate it); each model's own ``cost`` is still given.
    """

    models: dict[str, ModelUsage] = Field(default_factory=dict)

    @classmethod
    def from_models(cls, models: dict[str, ModelUsage]) -> SessionUsage:
        """Totals over ``models``."""
        costs = [usage.cost for usage in models.values()]
        return cls(
            calls=sum(usage.calls for usage in models.values()),
            prompt_tokens=sum(usage.prompt_tokens for usage in models.values()),
            completion_tokens=sum(usage.completion_tokens for usage in models.values()),
            total_tokens=sum(usage.total_tokens for usage in models.values()),
            cost=sum(c for c in costs if c is not None) if None not in costs else None,
            models=models,
        )

    @classmethod
    def from_messages(cls, messages: Iterable[Message]) -> SessionUsage:
        """Token totals of ``messages`` by model (no prices: see ``priced``)."""
        models: dict[str, ModelUsage] = {}
        for message in messages:
            usage = message.metadata.get("usage")
            if not isinstance(usage, dict):
                continue
            name = message.metadata.get("model")
            key = name if isinstance(name, str) and name else UNKNOWN_MODEL
            entry = models.setdefault(key, ModelUsage())
            entry.calls += 1
            entry.prompt_tokens += _tokens(usage, "prompt_tokens")
            entry.completion_tokens += _tokens(usage, "completion_tokens")
            entry.total_tokens += _tokens(usage, "total_tokens") or (
                _tokens(usage, "prompt_tokens") + _tokens(usage, "completion_tokens")
            )
        return cls.from_models(models)

    def priced(self) -> SessionUsage:
        """The same totals with each model's cost from the local price table."""
        from ._models.model_table import model_facts

        models = {}
        for name, usage in self.models.items():
            facts = model_facts(name)
            cost = None
            if (
                facts is not None
                and facts.input_cost_per_token is not None
                and facts.output_cost_per_token is not None
            ):
                cost = (
                    usage.prompt_tokens * facts.input_cost_per_token
                    + usage.completion_tokens * facts.output_cost_per_token
                )
            models[name] = usage.model_copy(update={"cost": cost})
        return SessionUsage.from_models(models)


def _tokens(usage: dict[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


async def session_usage(history: HistoryStorage, session_id: str) -> SessionUsage:
    """The session's token totals by model, priced where the local table knows the model.

    An unknown session has no usage (all zero), as it has an empty history.
    """
    return (await history.get_usage(session_id)).priced()
