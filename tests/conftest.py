"""Shared test set-up: nothing in the suite may reach beyond this machine's loopback."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo

_LOCAL_NAMES = {"localhost", "localhost.", "127.0.0.1", "::1", "0.0.0.0", ""}


def _is_local_host(host: Any) -> bool:
    if host is None:
        return True
    host = host.decode() if isinstance(host, bytes) else str(host)
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _check(sock: socket.socket, address: Any) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local_host(address[0]):
        raise ConnectionRefusedError(f"test network guard: refused connection to {address!r}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check(self, address)
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if not _is_local_host(host):
        raise socket.gaierror(socket.EAI_NONAME, f"test network guard: refused to resolve {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


# (the stubs declare both methods on _socket.socket, the C base class, hence `assignment`)
socket.socket.connect = _guarded_connect  # type: ignore[method-assign, assignment]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign, assignment]
socket.getaddrinfo = _guarded_getaddrinfo


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test gets its own chat-shell home and no provider credentials from the machine."""
    monkeypatch.setenv("CHAT_SHELL_HOME", str(tmp_path_factory.mktemp("home")))
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_API_BASE",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "CHAT_SHELL_MODEL",
        "CHAT_SHELL_STORAGE",
        "CHAT_SHELL_STORAGE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
