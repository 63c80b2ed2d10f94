"""Context windows and list prices of the chat models litellm knows, without importing litellm.

``model_table.json`` beside this module is extracted from litellm's local model table
(``litellm.model_cost`` with ``LITELLM_LOCAL_MODEL_COST_MAP=True``: the
``model_prices_and_context_window_backup.json`` of its wheel, plus the ``…-latest`` aliases
litellm adds when imported): for each chat model, its provider, ``max_input_tokens``,
``max_output_tokens`` and the USD price of an input and an output token. Reading it costs a
few ms once per process, where importing litellm costs seconds (docs/benchmarks.md). A test
compares it with the installed litellm; after upgrading litellm, rewrite it with::

    python -m chat_shell._models.model_table
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ModelFacts", "build_table", "model_facts"]

TABLE_FILE = Path(__file__).with_name("model_table.json")


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What the table says of one model; ``None`` where it says nothing."""

    provider: str
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _count(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number > 0 else None


def build_table(source: dict[str, Any]) -> dict[str, list[Any]]:
    """The table (``name → [provider, max_input, max_output, input_cost, output_cost]``) made
    from litellm's model table (``litellm.model_cost`` or its JSON file): chat models only."""
    table: dict[str, list[Any]] = {}
    for name, entry in sorted(source.items()):
        if not isinstance(entry, dict) or entry.get("mode") != "chat":
            continue
        provider = entry.get("litellm_provider")
        if not isinstance(provider, str):
            continue
        row = [
            provider,
            _count(entry.get("max_input_tokens")),
            _count(entry.get("max_output_tokens")),
            _number(entry.get("input_cost_per_token")),
            _number(entry.get("output_cost_per_token")),
        ]
        if any(value is not None for value in row[1:]):
            table[name] = row
    return table


@functools.cache
def _table() -> dict[str, list[Any]]:
    with TABLE_FILE.open(encoding="utf-8") as handle:
        table: dict[str, list[Any]] = json.load(handle)
    return table


def model_facts(name: str) -> ModelFacts | None:
    """The facts of a model named ``provider/model`` (as chat-shell names models), or ``None``.

    The name is looked up as litellm looks it up: as given (``gemini/gemini-2.5-flash``),
    else without its prefix when the table files that bare name under the same provider
    (``openai/gpt-4o-mini`` → ``gpt-4o-mini``).
    """
    table = _table()
    row = table.get(name)
    if row is None:
        provider, _, bare = name.partition("/")
        row = table.get(bare) if bare else None
        if row is None or not str(row[0]).startswith(provider):
            return None
    return ModelFacts(*row)


def _write(source: dict[str, Any]) -> int:
    table = build_table(source)
    lines = [f"{json.dumps(name)}: {json.dumps(row)}" for name, row in table.items()]
    TABLE_FILE.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")
    return len(table)


if __name__ == "__main__":  # pragma: no cover - run by hand after upgrading litellm
    import os

    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # the table shipped in litellm's wheel
    try:
        import litellm
    except ImportError:
        raise SystemExit(
            "litellm is not installed: pip install 'chat-shell-core[litellm]'"
        ) from None
    print(f"{_write(litellm.model_cost)} models written to {TABLE_FILE}")
