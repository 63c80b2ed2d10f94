"""A scripted OpenAI-compatible server on 127.0.0.1, for tests and benchmarks.

It speaks ``POST /v1/chat/completions`` (streamed or not) and ``GET /v1/models``, answering each
request with the next scripted ``Reply`` (or ``Recording``, replayed byte for byte) — or, when
the script is empty, with the default responder: a last user message ``tokens N`` gets N
distinct tokens, ``call TOOL {json}`` a call of that tool, anything else ``echo: <message>``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import select
import socket
import ssl
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ._recording import Recording, send_recording
from ._script import Reply, completion_body, reply_chunks

__all__ = ["Responder", "ScriptedModelServer", "default_responder"]

Responder = Callable[[dict[str, Any]], Reply | Recording]


def default_responder(request: dict[str, Any]) -> Reply:
    """Answer from the last message: ``tokens N``, ``call TOOL {json}``, or an echo.

    After a tool result, the answer is ``result: <tool output>``.
    """
    messages = request.get("messages") or [{}]
    last = messages[-1]
    content = last.get("content") or ""
    if isinstance(content, list):  # content parts
        content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    if last.get("role") == "tool":
        return Reply.text(f"result: {content}")
    if match := re.fullmatch(r"tokens (\d+)", content.strip()):
        return Reply.tokens(int(match.group(1)))
    if match := re.fullmatch(r"call (\w+) (\{.*\})", content.strip(), re.DOTALL):
        return Reply.tool(match.group(1), match.group(2))
    return Reply.text(f"echo: {content}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Small writes must leave at once (no Nagle delay), as from a real streaming server.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _send_json(self, status: int, body: dict[str, Any], reply: Reply | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if reply is not None:
            self._send_headers(reply)
            data = _compress(data, reply.content_encoding)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_headers(self, reply: Reply) -> None:
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.content_encoding:
            self.send_header("Content-Encoding", reply.content_encoding)

    def do_GET(self) -> None:
        self.server.owner._record("GET", self.path)
        if self.path.rstrip("/").endswith("/models"):
            self._send_json(
                200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]}
            )
        elif self.path.rstrip("/").endswith("/chat/completions"):
            error = {"message": "use POST", "type": "invalid_request"}
            self._send_json(405, {"error": error})
        else:
            self._send_json(404, {"error": {"message": "not found", "type": "invalid_request"}})

    def do_POST(self) -> None:
        self.server.owner._record("POST", self.path)
        length = int(self.headers.get("Content-Length") or 0)
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._send_json(400, {"error": {"message": "invalid JSON", "type": "invalid_request"}})
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": "not found", "type": "invalid_request"}})
            return
        reply = self.server.owner._next(request, dict(self.headers), self.client_address)
        if isinstance(reply, Recording):
            send_recording(self, reply)
            return
        if reply.first_delay:
            time.sleep(reply.first_delay)
        if reply.location is not None:
            self.send_response(reply.status)
            self.send_header("Location", reply.location)
            self._send_headers(reply)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if reply.body is not None:
            self._send_raw(reply)
            return
        if reply.status >= 400:
            error = {"message": reply.error_message, "type": "scripted", "code": reply.status}
            self._send_json(reply.status, {"error": error}, reply)
            return
        model = str(request.get("model", "scripted"))
        if not request.get("stream") or reply.not_streamed:
            self._send_json(200, completion_body(reply, model), reply)
            return
        self._stream(reply, model)

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _start_chunked(self, status: int, content_type: str, reply: Reply) -> _Body:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self._send_headers(reply)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        return _Body(self, reply.content_encoding)

    def _send_raw(self, reply: Reply) -> None:
        assert reply.body is not None
        body = self._start_chunked(reply.status, reply.content_type or "", reply)
        step = reply.piece_size or len(reply.body) or 1
        try:
            for start in range(0, len(reply.body), step):
                body.write(reply.body[start : start + step])
                if reply.delay:
                    time.sleep(reply.delay)
            body.end()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _stream(self, reply: Reply, model: str) -> None:
        body = self._start_chunked(200, reply.content_type or "text/event-stream", reply)
        try:
            for sent, chunk in enumerate(reply_chunks(reply, model)):
                if reply.hold_after is not None and sent >= reply.hold_after:
                    self._hold()
                    return
                if reply.drop_after is not None and sent > reply.drop_after:
                    self.close_connection = True
                    self.wfile.flush()
                    self.connection.shutdown(2)  # mid-stream drop: no final chunk, no [DONE]
                    return
                if reply.stream_error is not None and sent > len(reply.reasoning) + len(
                    reply.chunks
                ):
                    error = {"error": {"message": reply.stream_error, "type": "scripted"}}
                    body.write(b"data: " + json.dumps(error).encode() + b"\n\n")
                    break
                body.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                if reply.delay:
                    time.sleep(reply.delay)
            else:
                body.write(b"data: [DONE]\n\n")
            body.end()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _hold(self) -> None:
        """Send nothing more; wait until the client hangs up (or the server stops)."""
        self.close_connection = True
        self.wfile.flush()
        owner = self.server.owner
        while owner._server is not None:
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if not readable:
                continue
            try:
                if self.connection.recv(1024):
                    continue
            except OSError:
                pass
            with owner._lock:
                owner.hangups += 1
            return


def _compress(data: bytes, encoding: str | None) -> bytes:
    return zlib.compress(data, wbits=_wbits(encoding)) if encoding else data


def _wbits(encoding: str) -> int:
    return 31 if encoding == "gzip" else 15  # gzip framing, or zlib's (HTTP's "deflate")


class _Body:
    """A chunked body, compressed as it goes (each write flushed, as a streaming server does)."""

    def __init__(self, handler: _Handler, encoding: str | None) -> None:
        self._handler = handler
        self._compressor = zlib.compressobj(wbits=_wbits(encoding)) if encoding else None

    def write(self, data: bytes) -> None:
        if self._compressor is not None:
            data = self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        if data:
            self._handler._write_chunk(data)
            self._handler.wfile.flush()

    def end(self) -> None:
        if self._compressor is not None:
            self._handler._write_chunk(self._compressor.flush())
        self._handler._write_chunk(b"")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # load tests open hundreds of connections at once
    owner: ScriptedModelServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # clients that hang up mid-stream are part of the tests


class ScriptedModelServer:
    """An OpenAI-compatible model server on 127.0.0.1 that answers from a script.

    Use it as a (sync or async) context manager; ``url`` is the ``api_base`` to give chat-shell
    (``http://127.0.0.1:PORT/v1``, ``https://`` when given an ``ssl_context``). ``requests``
    records every request body received, ``headers`` their headers and ``peers`` the client
    address each came from (one address for requests sent on one kept-alive connection);
    ``paths`` holds the method and path of every request (redirected ones included) and
    ``hangups`` counts the clients that hung up on a held stream (``Reply.hold_after``).
    """

    handler: type[BaseHTTPRequestHandler] = _Handler  # what speaks the protocol

    def __init__(
        self,
        replies: Iterable[Reply | Recording] = (),
        *,
        responder: Responder = default_responder,
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._script: deque[Reply | Recording] = deque(replies)
        self._responder = responder
        self._port = port
        self._ssl_context = ssl_context
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.peers: list[tuple[str, int]] = []
        self.paths: list[tuple[str, str]] = []
        self.hangups = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def add(self, *replies: Reply | Recording) -> None:
        """Queue replies for the next requests."""
        with self._lock:
            self._script.extend(replies)

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self.paths.append((method, path))

    def _next(
        self, request: dict[str, Any], headers: dict[str, str], peer: Any
    ) -> Reply | Recording:
        with self._lock:
            self.requests.append(request)
            self.headers.append(headers)
            self.peers.append((str(peer[0]), int(peer[1])))
            if self._script:
                return self._script.popleft()
        return self._responder(request)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1"

    def start(self) -> ScriptedModelServer:
        self._server = _Server(("127.0.0.1", self._port), self.handler)
        self._server.owner = self
        if self._ssl_context is not None:
            self._server.socket = self._ssl_context.wrap_socket(
                self._server.socket, server_side=True
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="scripted-model-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ScriptedModelServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> ScriptedModelServer:
        return self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m chat_shell.testing``: serve the default responder until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    args = parser.parse_args(argv)
    with ScriptedModelServer(port=args.port) as server:
        print(server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
