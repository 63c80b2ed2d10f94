"""Tools: typed Python functions the model may call, with a JSON schema made from the signature."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from ._errors import ToolError, UserError

__all__ = ["Tool"]

DEFAULT_MAX_OUTPUT_CHARS = 20_000
_TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The description (text before an ``Args:`` section) and per-argument descriptions."""
    description: list[str] = []
    arguments: dict[str, str] = {}
    current: str | None = None
    in_args = False
    for line in inspect.cleandoc(doc).splitlines():
        stripped = line.strip()
        if stripped.lower() in {"args:", "arguments:", "parameters:"}:
            in_args = True
            continue
        if in_args:
            match = re.match(r"(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)", stripped)
            if match and not line.startswith((" " * 8, "\t\t")):
                current = match.group(1)
                arguments[current] = match.group(2)
            elif stripped.endswith(":") and not line.startswith(" "):
                in_args = False  # another section (Returns:, Raises:)
            elif current and stripped:
                arguments[current] += " " + stripped
        else:
            description.append(line)
    return "\n".join(description).strip(), arguments


def _serialise(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, ensure_ascii=False, default=str)


def cap_output(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… [output truncated: {len(text) - limit} more characters]"


class Tool:
    """A function the model can call.

    ``Tool(fn)`` reads the name from the function, the description and argument descriptions
    from its docstring (Google style ``Args:``), and the JSON schema from its type hints and
    defaults. Sync functions run in a worker thread, async ones on the event loop. Arguments are
    validated before the call; the result is turned into text (JSON for non-strings) and capped
    at ``max_output_chars``.
    """

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        requires_approval: bool = False,
    ) -> None:
        self.function = function
        self.name = name or function.__name__
        if not _TOOL_NAME.fullmatch(self.name):
            raise UserError(f"invalid tool name {self.name!r}: use letters, digits, '_' or '-'")
        doc_description, arg_docs = _parse_docstring(function.__doc__ or "")
        self.description = description or doc_description or self.name
        self.timeout = timeout
        self.max_output_chars = max_output_chars
        self.requires_approval = requires_approval
        self.is_async = inspect.iscoroutinefunction(function)
        self.arguments_model = self._arguments_model(function, arg_docs)
        schema = self.arguments_model.model_json_schema()
        schema.pop("title", None)
        self.parameters: dict[str, Any] = schema

    def _arguments_model(
        self, function: Callable[..., Any], arg_docs: dict[str, str]
    ) -> type[BaseModel]:
        hints = get_type_hints(function)
        fields: dict[str, Any] = {}
        for parameter in inspect.signature(function).parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise UserError(f"tool {self.name!r}: *args/**kwargs cannot be described to a model")
            annotation = hints.get(parameter.name, Any)
            default = ... if parameter.default is parameter.empty else parameter.default
            fields[parameter.name] = (
                annotation,
                Field(default, description=arg_docs.get(parameter.name)),
            )
        return create_model(  # type: ignore[call-overload,no-any-return]
            f"{self.name}_arguments",
            __config__=ConfigDict(extra="forbid"),
            **fields,
        )

    def schema(self) -> dict[str, Any]:
        """The tool in the OpenAI ``tools`` format."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The validated keyword arguments; ``ToolError`` describes what does not fit."""
        try:
            model = self.arguments_model.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ToolError(f"invalid arguments for {self.name}: {problems}") from exc
        return {name: getattr(model, name) for name in type(model).model_fields}

    async def run(self, arguments: dict[str, Any]) -> str:
        """Validate, call, serialise and cap. Exceptions other than ``ToolError`` propagate."""
        kwargs = self.validate(arguments)
        if self.is_async:
            result = await self.function(**kwargs)
        else:
            result = await asyncio.to_thread(self.function, **kwargs)
        return cap_output(_serialise(result), self.max_output_chars)

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"


ApprovalCallback = Callable[[str, dict[str, Any]], Awaitable[bool]]
