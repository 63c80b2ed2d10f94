"""chat-shell tool names for MCP tools: ``SERVER_TOOL``, valid for every provider, never twice."""

from __future__ import annotations

import hashlib
import re

__all__ = ["MAX_NAME", "tool_names"]

# OpenAI, Anthropic and Gemini accept ^[a-zA-Z0-9_-]{1,64}$ (Gemini: starting with a letter or _).
MAX_NAME = 64
_INVALID = re.compile(r"[^A-Za-z0-9_-]")


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _fit(name: str, original: str) -> str:
    if len(name) <= MAX_NAME:
        return name
    return f"{name[: MAX_NAME - 9]}_{_short_hash(original)}"


def tool_names(server: str, tools: list[str], taken: set[str]) -> dict[str, str]:
    """For each MCP tool name of ``server``, its chat-shell name: ``server_tool`` with every
    character a provider refuses replaced by ``_``, cut to 64 characters with a hash of the
    original when longer, and given a hash suffix when it would collide with a name in
    ``taken`` or with another tool of this server. ``taken`` is updated."""
    names: dict[str, str] = {}
    for tool in tools:
        base = f"{server}_{tool}"
        candidate = _fit(_INVALID.sub("_", base), base)
        if not candidate[0].isalpha() and candidate[0] != "_":
            candidate = _fit(f"_{candidate}", base)
        if candidate in taken:
            stem = candidate[: MAX_NAME - 9]
            candidate = f"{stem}_{_short_hash(base)}"
            counter = 1
            while candidate in taken:
                candidate = f"{stem}_{_short_hash(f'{base}#{counter}')}"
                counter += 1
        taken.add(candidate)
        names[tool] = candidate
    return names
