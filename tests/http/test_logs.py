"""Keys a client puts in a query string are refused and never written to any log line."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import httpx
import pytest
from chat_shell_http._logs import install_log_redaction, redact_query_secrets
from http_support import ProcessServer, write_config

KEY = "logs-key-0123456789abcdef"


def query_secrets() -> dict[str, str]:
    """Query strings, each carrying a fresh secret, by the names clients put keys under."""
    names = [
        "api_key",
        "API_KEY",
        "Api-Key",
        "apikey",
        "access_token",
        "Access_Token",
        "key",
        "KEY",
        "token",
        "auth",
        "client_secret",
        "password",
        "api%5Fkey",  # percent-encoded name
        "api+key",
    ]
    queries = {}
    for name in names:
        secret = "sk-" + secrets.token_hex(12)
        queries[f"?{name}={secret}"] = secret
    more = {
        "sk-" + secrets.token_hex(12): "?limit=5&api_key={}&offset=0",  # in the middle
        "sk-" + secrets.token_hex(12): "?x=1;access_token={}",  # after a semicolon
        "sk-" + secrets.token_hex(12): "?key={}&key=again",  # twice
        "sk-" + secrets.token_hex(12): "?key={}%26still-the-key",  # an encoded "&" inside
    }
    for secret, template in more.items():
        queries[template.format(secret)] = secret
    return queries


def test_query_secrets_never_reach_the_access_log(tmp_path: Path) -> None:
    write_config(tmp_path)
    server = ProcessServer(tmp_path, "--api-key", KEY).wait_ready()
    queries = query_secrets()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for query in queries:
                for path in ("/v1/sessions", "/api/v1/sessions", "/v1/nowhere", "/v1/health"):
                    status = client.get(path + query).status_code
                    assert status in (200, 401, 404)
            client.get("/v1/sessions?limit=5&offset=0", headers={"Authorization": f"Bearer {KEY}"})
    finally:
        log = server.stop()
    access = [line for line in log.splitlines() if '"GET /' in line]
    assert len(access) >= 4 * len(queries)  # every request was logged ...
    for secret in queries.values():
        assert secret not in log  # ... without its secret
    assert log.count("[redacted]") >= 4 * len(queries)
    assert "/v1/sessions?limit=5&api_key=[redacted]&offset=0" in log  # the rest is kept
    assert "/v1/sessions?limit=5&offset=0" in log


def test_the_servers_own_log_lines_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    secret = "sk-" + secrets.token_hex(12)
    with caplog.at_level(logging.INFO):
        for name in ("chat_shell_http", "uvicorn.error", "uvicorn.access"):
            log = logging.getLogger(name)
            log.warning("refused %s %s", "GET", f"/v1/x?api_key={secret}")
            log.warning(f"refused GET /v1/x?token={secret}")
            log.warning("refused %(path)s", {"path": f"/v1/x?key={secret}"})
    assert len(caplog.records) == 9
    for record in caplog.records:
        message = record.getMessage()
        assert secret not in message
        assert "refused" in message
        assert "/v1/x?" in message
        # ours says [redacted]; once litellm is imported, its own filter may get there first
        assert "[redacted]" in message or "REDACTED" in message


def test_what_is_redacted() -> None:
    assert redact_query_secrets("GET /a?api_key=s1&limit=3") == "GET /a?api_key=[redacted]&limit=3"
    assert redact_query_secrets("/a?limit=3&offset=0") == "/a?limit=3&offset=0"
    assert redact_query_secrets("/a?key=") == "/a?key="
    assert redact_query_secrets('"GET /a?token=x#frag HTTP/1.1"') == (
        '"GET /a?token=[redacted]#frag HTTP/1.1"'
    )
    assert redact_query_secrets("no query here: a=b") == "no query here: a=b"
