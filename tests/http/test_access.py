"""Who may reach the server: Host names (DNS rebinding) and the socket really listened on
(a server without API keys serves this machine only, however it was started)."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chat_shell.testing import ScriptedModelServer
from chat_shell_http import ServerSettings
from chat_shell_http._guards import AccessGuard, host_name
from http_support import (
    ProcessServer,
    ThreadServer,
    assert_error_shape,
    make_settings,
    user,
    write_config,
)

KEY = "access-key-0123456789abcdef"


def hostile_hosts(port: int) -> list[str]:
    """Host headers a page of another site sends once its name resolves to 127.0.0.1."""
    return [
        "attacker.example",
        f"attacker.example:{port}",
        "127.0.0.1.nip.io",
        f"localhost.attacker.example:{port}",
        "attacker.example.",
        "169.254.169.254",
        "0.0.0.0",
        "[fe80::1]",
        "[::ffff:10.0.0.1]",
        "",  # no name at all
        "local host",
        "localhost:80:90",
        "localhost@attacker.example",
        "[::1",
    ]


def loopback_hosts(port: int) -> list[str]:
    return [
        "localhost",
        f"localhost:{port}",
        "LOCALHOST",
        "localhost.",
        "127.0.0.1",
        f"127.0.0.1:{port}",
        "127.0.0.2",
        "[::1]",
        f"[::1]:{port}",
        "[::ffff:127.0.0.1]",
    ]


async def test_a_rebinding_request_is_refused_and_touches_nothing(
    server: ThreadServer,
) -> None:
    """The server without keys (conftest): a page that rebound its name to 127.0.0.1 gets
    the documented 400, reads no history and starts no run."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        body = {"messages": user("secret history"), "session_id": "rebind-1", "stream": False}
        assert (await client.post("/v1/response", json=body)).status_code == 200
        history = (await client.get("/v1/sessions/rebind-1/history")).json()
        sessions = (await client.get("/v1/sessions")).json()
        runs = (server.state.runs.active_count, server.state.runs.started_count)
        for host in hostile_hosts(server.port):
            headers = {"Host": host}
            requests = [
                client.get("/v1/sessions/rebind-1/history", headers=headers),
                client.post(
                    "/v1/response",
                    json={"messages": user("read my files"), "session_id": "rebind-1"},
                    headers=headers,
                ),
                client.delete("/v1/sessions/rebind-1", headers=headers),
                client.get("/api/v1/sessions/rebind-1/messages", headers=headers),
                client.get("/v1/health", headers=headers),
            ]
            for request in requests:
                refused = await request
                error = assert_error_shape(refused, 400, "host_not_allowed")
                assert "allowed_hosts" in error["message"], host
                assert "secret history" not in refused.text
        assert (await client.get("/v1/sessions/rebind-1/history")).json() == history
        assert (await client.get("/v1/sessions")).json() == sessions
        assert (server.state.runs.active_count, server.state.runs.started_count) == runs
        for host in loopback_hosts(server.port):
            answer = await client.get("/v1/sessions/rebind-1/history", headers={"Host": host})
            assert answer.status_code == 200, host
        await client.delete("/v1/sessions/rebind-1")


@pytest.fixture(scope="module")
def named(
    upstream: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadServer]:
    settings = make_settings(
        upstream.url,
        tmp_path_factory.mktemp("named"),
        allowed_hosts=["chat.example.com", "*.example.org"],
    )
    running = ThreadServer(settings).start()
    yield running
    running.stop()


async def test_allowed_hosts_replaces_the_loopback_names(named: ThreadServer) -> None:
    async with httpx.AsyncClient(base_url=named.url, timeout=30) as client:
        for host in ("chat.example.com", f"CHAT.example.com:{named.port}", "a.b.example.org"):
            assert (await client.get("/v1/sessions", headers={"Host": host})).status_code == 200
        for host in ("example.org", "chat.example.com.attacker.example", "localhost", "x.com"):
            refused = await client.get("/v1/sessions", headers={"Host": host})
            assert_error_shape(refused, 400, "host_not_allowed")


async def test_with_api_keys_any_host_is_answered(
    upstream: ScriptedModelServer, tmp_path: Path
) -> None:
    running = ThreadServer(make_settings(upstream.url, tmp_path, api_keys=[KEY])).start()
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            headers = {"Host": "chat.example.net", "Authorization": f"Bearer {KEY}"}
            assert (await client.get("/v1/sessions", headers=headers)).status_code == 200
            anonymous = await client.get("/v1/sessions", headers={"Host": "chat.example.net"})
            assert_error_shape(anonymous, 401, "unauthorized")
    finally:
        running.stop()


def test_host_names_are_parsed_as_rfc_9112_writes_them() -> None:
    assert host_name("LocalHost.:8000") == "localhost"
    assert host_name("[::1]:8000") == "::1"
    assert host_name("[::1]") == "::1"
    assert host_name("127.0.0.1:") == "127.0.0.1"
    for bad in ("", ":80", "[::1", "[::1]x", "a b", "a:b", "a:１", "::1", "a/b"):
        assert host_name(bad) is None, bad


# -- the socket really listened on -----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "via"),
    [
        (("--host", "0.0.0.0"), "127.0.0.1"),
        (("--host", "0.0.0.0", "--http", "chat_shell_http:HTTPProtocol"), "127.0.0.1"),
        (("--host", "::"), "::1"),
    ],
    ids=["0.0.0.0", "0.0.0.0 with HTTPProtocol", "::"],
)
def test_uvicorn_factory_beyond_loopback_without_keys_serves_nothing(
    args: tuple[str, ...], via: str, tmp_path: Path
) -> None:
    """`uvicorn --factory chat_shell_http:create_app --host 0.0.0.0` (docs/http.md) without
    keys: even a request from this machine is refused, so the mistake shows at once."""
    if via == "::1" and not ipv6_loopback():  # pragma: no cover - machines without IPv6
        via, args = "127.0.0.1", ("--host", "0.0.0.0")
    write_config(tmp_path)
    server = ProcessServer.uvicorn(tmp_path, *args, host=via).wait_ready(status=None)
    try:
        for answer in (
            httpx.get(f"{server.url}/v1/health", timeout=10),
            httpx.get(f"{server.url}/v1/sessions", timeout=10),
            httpx.post(f"{server.url}/v1/response", json={"messages": user("hi")}, timeout=10),
        ):
            error = assert_error_shape(answer, 503, "insecure_bind")
            assert "no API keys" in error["message"]
            assert error["retryable"] is False
    finally:
        log = server.stop()
    assert "refusing every request" in log
    assert log.count("refusing every request") == 1


def test_uvicorn_factory_beyond_loopback_with_keys_serves(tmp_path: Path) -> None:
    write_config(tmp_path)
    server = ProcessServer.uvicorn(
        tmp_path, "--host", "0.0.0.0", env={"CHAT_SHELL_API_KEYS": KEY}
    ).wait_ready()
    try:
        assert_error_shape(httpx.get(f"{server.url}/v1/sessions", timeout=10), 401)
        headers = {"Authorization": f"Bearer {KEY}"}
        answer = httpx.get(f"{server.url}/v1/sessions", headers=headers, timeout=10)
        assert answer.status_code == 200
    finally:
        server.stop()


def test_uvicorn_factory_on_loopback_without_keys_serves(tmp_path: Path) -> None:
    write_config(tmp_path)
    server = ProcessServer.uvicorn(tmp_path, "--host", "127.0.0.1").wait_ready()
    try:
        assert httpx.get(f"{server.url}/v1/sessions", timeout=10).status_code == 200
    finally:
        log = server.stop()
    assert "refusing" not in log


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_serve_on_the_ipv6_loopback(host: str, tmp_path: Path) -> None:
    """`chat-shell serve --host ::1` serves on [::1]; where this machine has no IPv6, it
    stops with one clear line."""
    write_config(tmp_path)
    command = [str(Path(sys.executable).parent / "chat-shell"), "serve"]
    server = ProcessServer(tmp_path, "--host", host, command=command, host="::1")
    if not ipv6_loopback():  # pragma: no cover - machines without IPv6
        assert server.process.wait(30) == 2
        lines = [line for line in server.stop().splitlines() if line.strip()]
        assert len(lines) == 1
        assert "cannot listen on http://[::1]:" in lines[0]
        return
    server.wait_ready()
    try:
        answer = httpx.get(f"{server.url}/v1/sessions", timeout=10)
        assert answer.status_code == 200
        assert httpx.get(f"{server.url}/v1/health", headers={"Host": "[::1]"}).status_code == 200
    finally:
        log = server.stop()
    assert "http://[::1]:" in log


async def test_a_request_that_came_from_beyond_loopback_is_refused() -> None:
    """The per-request check on its own: a request whose local address is not a loopback
    one (the server listens beyond this machine) never reaches the app."""
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    guard = AccessGuard(app, ServerSettings())
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    def scope(server: tuple[str, int | None]) -> dict[str, Any]:
        headers = [(b"host", b"localhost")]
        return {"type": "http", "path": "/v1/sessions", "server": server, "headers": headers}

    for address in ("192.0.2.10", "10.1.2.3", "::ffff:192.0.2.10", "2001:db8::1"):
        sent.clear()
        await guard(scope((address, 8000)), receive, send)
        assert sent[0]["status"] == 503, address
        assert b"insecure_bind" in sent[1]["body"]
    assert reached == []
    port = free_unlistened_port()
    await guard(scope(("127.0.0.1", port)), receive, send)  # nothing listens beyond loopback
    await guard(scope(("/tmp/chat-shell.sock", None)), receive, send)  # a Unix socket
    assert reached == ["/v1/sessions", "/v1/sessions"]
    keyed = AccessGuard(app, ServerSettings(api_keys=[KEY]))  # type: ignore[list-item]
    await keyed(scope(("192.0.2.10", 8000)), receive, send)
    assert len(reached) == 3


def free_unlistened_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
