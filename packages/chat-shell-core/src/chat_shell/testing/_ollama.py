"""A scripted Ollama server on 127.0.0.1: the native ``/api/chat`` API, streamed as NDJSON."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from ._recording import Recording, send_recording
from ._script import Reply
from ._server import ScriptedModelServer

__all__ = ["ScriptedOllamaServer"]


def _message_lines(reply: Reply, model: str) -> list[dict[str, Any]]:
    """The objects Ollama streams for ``reply``: one per piece, then the ``done`` one."""

    def line(message: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "model": model,
            "created_at": "2026-01-01T00:00:00.000000Z",
            "message": {"role": "assistant", "content": "", **message},
            "done": False,
            **extra,
        }

    lines = [line({"thinking": text}) for text in reply.reasoning]
    lines += [line({"content": text}) for text in reply.chunks]
    if reply.tool_calls:  # Ollama sends every call at once, arguments as an object
        calls = [
            {"function": {"name": call.name, "arguments": json.loads(call.arguments_text)}}
            for call in reply.tool_calls
        ]
        lines.append(line({"tool_calls": calls}))
    usage = reply.usage_for()
    lines.append(
        line(
            {},
            done=True,
            done_reason="stop",
            total_duration=1000,
            prompt_eval_count=usage["prompt_tokens"],
            eval_count=usage["completion_tokens"],
        )
    )
    return lines


class _OllamaHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.owner._record("GET", self.path)
        if self.path.rstrip("/") == "/api/tags":
            body = {"models": [{"name": "scripted", "model": "scripted"}]}
            self._send(200, json.dumps(body).encode(), "application/json")
        else:
            self._send(404, b"404 page not found", "text/plain")

    def do_POST(self) -> None:
        owner = self.server.owner
        owner._record("POST", self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/api/chat":
            self._send(404, b"404 page not found", "text/plain")
            return
        try:
            request = json.loads(raw or b"{}")
        except ValueError:
            self._send(400, b'{"error":"invalid JSON"}', "application/json")
            return
        reply = owner._next(request, dict(self.headers), self.client_address)
        if isinstance(reply, Recording):
            send_recording(self, reply)
            return
        if reply.status >= 400:
            body = json.dumps({"error": reply.error_message}).encode()
            self._send(reply.status, body, "application/json")
            return
        lines = _message_lines(reply, str(request.get("model", "scripted")))
        if request.get("stream") is False:  # one object: the pieces joined
            message = {"role": "assistant", "content": "".join(reply.chunks)}
            for item in lines:
                if "tool_calls" in item["message"]:
                    message["tool_calls"] = item["message"]["tool_calls"]
            final = {**lines[-1], "message": message}
            self._send(200, json.dumps(final).encode(), "application/json")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for item in lines:
                data = json.dumps(item).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                if reply.delay:
                    time.sleep(reply.delay)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class ScriptedOllamaServer(ScriptedModelServer):
    """An Ollama server on 127.0.0.1 answering ``POST /api/chat`` from a script of ``Reply``
    objects (streamed as NDJSON, as Ollama streams; tool calls with object arguments), or with
    the default responder. ``url`` is its base (``http://127.0.0.1:PORT``, no ``/v1``); every
    path asked for is kept in ``paths`` (``/api/generate`` and other paths answer 404)."""

    handler = _OllamaHandler

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
