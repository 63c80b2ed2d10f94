"""Helpers of the OpenAI-compatible route tests: the upstream's extra scripts, a reader of
OpenAI streams, the error shape."""

from __future__ import annotations

import json
from typing import Any

import httpx
from chat_shell.testing import Reply, ScriptedToolCall
from http_support import MODEL, responder

__all__ = ["MODEL", "assert_openai_error", "openai_responder", "read_stream", "turn"]

UPSTREAM_SECRET = "sk-upstream-1234567890"


def openai_responder(request: dict[str, Any]) -> Reply:
    """``http_support.responder`` plus: ``think`` (reasoning, then text), ``say then call``
    (text and a calculator call in one answer), ``midfail`` (three tokens, then an error in the
    stream), ``late`` (the first token after 3 s)."""
    last = (request.get("messages") or [{}])[-1]
    content = str(last.get("content") or "").strip() if last.get("role") == "user" else ""
    if content == "think":
        return Reply(reasoning=["let me ", "see"], chunks=["4"])
    if content == "say then call":
        call = ScriptedToolCall("calculator", {"expression": "1+1"})
        return Reply(chunks=["Let me ", "see."], tool_calls=[call])
    if content == "midfail":
        return Reply.tokens(3, stream_error=f"upstream secret {UPSTREAM_SECRET}")
    if content == "late":
        return Reply.text("late answer", first_delay=3)
    return responder(request)


def turn(text: str, **fields: Any) -> dict[str, Any]:
    """A chat completions request with one user message."""
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **fields}


def read_stream(response: httpx.Response) -> tuple[list[dict[str, Any]], bool]:
    """The chunks of an OpenAI stream (the error object too, if one came) and whether it ended
    with ``data: [DONE]``; every line must be a ``data:`` line, a comment or blank."""
    chunks: list[dict[str, Any]] = []
    done = False
    for line in response.text.split("\n"):
        if not line or line.startswith(":"):
            continue
        assert line.startswith("data: "), line
        assert not done, "nothing may follow [DONE]"
        if line == "data: [DONE]":
            done = True
            continue
        chunks.append(json.loads(line[6:]))
    return chunks, done


def assert_openai_error(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """The OpenAI error shape, with its ``type`` as OpenAI types the status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert int(response.headers["content-length"]) == len(response.content)
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code", "retryable"}, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["retryable"], bool)
    assert error["param"] is None or isinstance(error["param"], str)
    expected_type = {401: "authentication_error", 429: "rate_limit_error"}.get(
        status, "server_error" if status >= 500 else "invalid_request_error"
    )
    assert error["type"] == expected_type, error
    assert "Traceback" not in response.text
    assert UPSTREAM_SECRET not in response.text
    if code is not None:
        assert error["code"] == code, error
    return error
