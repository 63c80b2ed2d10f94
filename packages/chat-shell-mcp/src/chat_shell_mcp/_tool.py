"""An MCP server's tool as a chat-shell ``Tool``: its own JSON schema, its result as text."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from chat_shell import Tool, ToolError

if TYPE_CHECKING:
    import mcp_types

__all__ = ["McpTool", "result_text"]

_TRUNCATED = "\n… [output truncated: {} more characters]"


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + _TRUNCATED.format(len(text) - limit)


def _block_text(block: Any) -> str:
    """One content block as text the model can read."""
    kind = getattr(block, "type", None)
    if kind == "text":
        return str(block.text)
    if kind in ("image", "audio"):
        size = len(getattr(block, "data", "") or "") * 3 // 4
        return f"[{kind} {getattr(block, 'mime_type', '')}, about {size} bytes, not shown]"
    if kind == "resource":
        resource = block.resource
        text = getattr(resource, "text", None)
        if text is not None:
            return f"[resource {resource.uri}]\n{text}"
        return f"[binary resource {resource.uri}, not shown]"
    if kind == "resource_link":
        return f"[resource link {block.uri}: {getattr(block, 'name', '')}]"
    return json.dumps(block.model_dump(mode="json", exclude_none=True), ensure_ascii=False)


def result_text(result: mcp_types.CallToolResult) -> str:
    """The text of a tool result: its content blocks, one after another; its structured content
    as JSON when it has no text of its own (servers that give both repeat the one in the other)."""
    parts = [_block_text(block) for block in result.content]
    has_text = any(getattr(block, "type", None) == "text" for block in result.content)
    if result.structured_content is not None and not has_text:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


class McpTool(Tool):
    """A tool of an MCP server. ``run`` validates the arguments against the server's own input
    schema, calls the server through ``call`` and returns the result's text, capped; a result the
    server marks as an error is a ``ToolError``."""

    def __init__(
        self,
        *,
        name: str,
        server: str,
        remote_name: str,
        description: str,
        parameters: dict[str, Any],
        call: Callable[[str, dict[str, Any]], Awaitable[mcp_types.CallToolResult]],
        timeout: float,
        max_output_chars: int,
        requires_approval: bool,
    ) -> None:
        # Not Tool.__init__: there is no Python signature to read, the schema is the server's.
        self.name = name
        self.server = server
        self.remote_name = remote_name
        self.description = description or f"{remote_name} (from the MCP server {server})"
        self.parameters = parameters
        self.timeout = timeout
        self.max_output_chars = max_output_chars
        self.requires_approval = requires_approval
        self.is_async = True
        self._call = call
        self.function = self._invoke
        self._validator = _validator(parameters)

    async def _invoke(self, **arguments: Any) -> str:
        return await self.run(arguments)

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        if self._validator is not None:
            errors = sorted(self._validator.iter_errors(arguments), key=lambda e: list(e.path))
            if errors:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e.path) or 'arguments'}: {e.message}"
                    for e in errors[:10]
                )
                raise ToolError(f"invalid arguments for {self.name}: {problems}")
        return arguments

    async def run(self, arguments: dict[str, Any]) -> str:
        result = await self._call(self.remote_name, self.validate(arguments))
        text = _cap(result_text(result), self.max_output_chars)
        if result.is_error:
            raise ToolError(text or f"{self.name} failed")
        return text

    def __repr__(self) -> str:
        return f"McpTool({self.name!r}, server={self.server!r})"


def _validator(schema: dict[str, Any]) -> Any:
    """A JSON-schema validator of the arguments, or ``None`` when the server's schema is not
    one we can check (the server validates anyway)."""
    import jsonschema

    try:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        return cls(schema)
    except Exception:
        return None
