"""fetch_url against crafted URLs (no connection to a forbidden address, ever) and web_search
against local fakes of SearXNG, Brave and Tavily speaking their JSON formats."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from chat_shell import Settings, ToolError, ToolRegistry, UserError
from chat_shell.tools import RateLimiter, _web, html_to_text, make_fetch_url, make_web_search

PAGE = """<!doctype html><html><head><title>Test  page</title><style>body{color:red}</style>
<script>alert('x')</script></head><body><h1>Hello</h1><p>First <b>para</b>graph.</p>
<ul><li>one</li><li>two</li></ul><noscript>enable js</noscript></body></html>"""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.seen.append((self.path, dict(self.headers)))
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        port = self.server.server_address[1]
        routes: dict[str, tuple[int, bytes, str, dict[str, str]]] = {
            "/page": (200, PAGE.encode(), "text/html; charset=utf-8", {}),
            "/plain": (200, "caf\u00e9".encode("latin-1"), "text/plain; charset=latin-1", {}),
            "/big": (200, b"a" * 3_000_000, "text/plain", {}),
            "/image": (200, b"\x89PNG" + bytes(100), "image/png", {}),
            "/missing": (404, b"nope", "text/plain", {}),
        }
        redirects = {
            "/to-page": "/page",
            "/to-private": "http://10.0.0.1/admin",
            "/to-metadata": "http://169.254.169.254/latest/meta-data/",
            "/to-localhost": f"http://localhost:{port}/page",
            "/to-loopback-other-port": f"http://127.0.0.1:{port + 1 if port < 65535 else 1}/",
            "/to-decimal": "http://2130706433/",
            "/to-mapped": "http://[::ffff:127.0.0.1]/",
            "/to-file": "file:///etc/passwd",
            "/to-rebind": f"http://rebind.test:{port}/page",
            "/loop": "/loop",
        }
        if url.path in redirects:
            self._send(302, b"", "text/plain", Location=redirects[url.path])
        elif url.path == "/search":  # SearXNG
            self._send(200, json.dumps(_searxng(query["q"][0])).encode(), "application/json")
        elif url.path == "/res/v1/web/search":  # Brave
            if self.headers.get("X-Subscription-Token") != "brave-key":
                self._send(401, b'{"error": "bad token"}', "application/json")
            else:
                self._send(200, json.dumps(_brave(query["q"][0])).encode(), "application/json")
        elif url.path in routes:
            status, body, content_type, headers = routes[url.path]
            self._send(status, body, content_type, **headers)
        else:
            self._send(404, b"", "text/plain")

    def do_POST(self) -> None:  # Tavily
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append((self.path, dict(self.headers)))
        if self.headers.get("Authorization") != "Bearer tavily-key":
            self._send(401, b'{"detail": {"error": "Unauthorized"}}', "application/json")
            return
        self._send(200, json.dumps(_tavily(body["query"])).encode(), "application/json")


def _searxng(query: str) -> dict[str, Any]:
    return {
        "query": query,
        "number_of_results": 0,
        "results": [
            {
                "url": f"https://example.org/{i}",
                "title": f"Result {i} for {query}",
                "content": f"Snippet {i}",
                "engine": "duckduckgo",
                "engines": ["duckduckgo"],
                "positions": [i],
                "score": 1.0 / (i + 1),
                "category": "general",
            }
            for i in range(5)
        ],
        "answers": [],
        "corrections": [],
        "infoboxes": [],
        "suggestions": [],
        "unresponsive_engines": [],
    }


def _brave(query: str) -> dict[str, Any]:
    return {
        "type": "search",
        "query": {"original": query, "more_results_available": True},
        "mixed": {"type": "mixed", "main": [{"type": "web", "index": 0, "all": False}]},
        "web": {
            "type": "search",
            "family_friendly": True,
            "results": [
                {
                    "type": "search_result",
                    "title": f"Brave {i}",
                    "url": f"https://brave.example/{i}",
                    "description": f"About <strong>{query}</strong> number {i}",
                    "is_source_local": False,
                    "is_source_both": False,
                    "profile": {"name": "Example", "url": "https://brave.example"},
                    "language": "en",
                    "family_friendly": True,
                    "meta_url": {"scheme": "https", "netloc": "brave.example", "path": f"/{i}"},
                }
                for i in range(4)
            ],
        },
    }


def _tavily(query: str) -> dict[str, Any]:
    return {
        "query": query,
        "follow_up_questions": None,
        "answer": None,
        "images": [],
        "results": [
            {
                "title": f"Tavily {i}",
                "url": f"https://tavily.example/{i}",
                "content": f"Content {i}",
                "score": 0.9,
                "raw_content": None,
            }
            for i in range(3)
        ],
        "response_time": 1.0,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[tuple[str, dict[str, str]]]


@pytest.fixture(scope="module")
def _running_server() -> Iterator[_Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def server(_running_server: _Server) -> _Server:
    _running_server.seen = []
    return _running_server


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every address a socket tries to connect to (the root conftest also refuses non-loopback)."""
    seen: list[Any] = []
    real = socket.socket.connect

    def record(self: socket.socket, address: Any) -> None:
        seen.append(address)
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", record)
    return seen


DNS: dict[str, list[str]] = {
    "site.test": ["127.0.0.1"],
    "internal.test": ["10.1.2.3"],
    "metadata.test": ["169.254.169.254"],
    "mixed.test": ["93.184.216.34", "127.0.0.1"],
    "mapped.test": ["::ffff:10.0.0.1"],
    "v6local.test": ["fd00::1"],
    "linklocal6.test": ["fe80::1%eth0"],
    "cgnat.test": ["100.64.1.1"],
    "zero.test": ["0.0.0.0"],
    "multicast.test": ["239.1.1.1"],
}


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A fake resolver; ``rebind.test`` answers 127.0.0.1 once, then a private address."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        if host == "rebind.test":
            return ["127.0.0.1"] if asked.count(host) == 1 else ["10.0.0.7"]
        if host not in DNS:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return DNS[host]

    monkeypatch.setattr(_web, "resolve", resolve)
    return asked


CRAFTED = [
    "http://127.0.0.1/",
    "http://127.0.0.1:22/",
    "http://127.1/",
    "http://127.000.000.001/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0x7f.0.0.1/",
    "http://0x7f.1/",
    "http://0177.0.0.1/",
    "http://017700000001/",
    "http://0/",
    "http://0.0.0.0/",
    "http://0x0/",
    "http://[::1]/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[0:0:0:0:0:ffff:127.0.0.1]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[::127.0.0.1]/",
    "http://[64:ff9b::127.0.0.1]/",
    "http://[2002:7f00:1::]/",
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fc00::1]/",
    "http://[ff02::1]/",
    "http://localhost/",
    "http://localhost./",
    "http://LOCALHOST/",
    "http://LocalHost.:8080/",
    "http://foo.localhost/",
    "http://10.0.0.1/",
    "http://192.168.1.1/",
    "http://172.16.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://198.18.0.1/",
    "http://192.0.0.8/",
    "http://256.0.0.1/",
    "http://1.2.3.4.5/",
    "http://%31%32%37.0.0.1/",
    "http://internal.test/",
    "http://metadata.test/",
    "http://mixed.test/",
    "http://mapped.test/",
    "http://v6local.test/",
    "http://linklocal6.test/",
    "http://cgnat.test/",
    "http://zero.test/",
    "http://multicast.test/",
    "http://unknown-name.test/",
    "http://user:pass@example.test/",
    "file:///etc/passwd",
    "ftp://example.test/",
    "gopher://127.0.0.1:25/_HELO",
    "dict://127.0.0.1:11211/stat",
    "data:text/html,<h1>hi</h1>",
    "javascript:alert(1)",
    "//127.0.0.1/",
    "127.0.0.1",
    "http:///path",
    "http://" + "a" * 3000 + ".test/",
]


def test_there_are_enough_crafted_urls() -> None:
    assert len(CRAFTED) >= 40


@pytest.mark.parametrize("url", CRAFTED)
async def test_crafted_urls_are_refused_without_connecting(
    url: str, dns: list[str], connects: list[Any]
) -> None:
    fetch = make_fetch_url()
    with pytest.raises(ToolError):
        await fetch.run({"url": url})
    assert connects == []


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.1", "::1", "::ffff:192.168.0.1", "64:ff9b::a00:1", "fd12::1",
     "2002:c0a8:0101::1", "0.0.0.0", "100.64.0.1", "192.0.2.1", "198.51.100.7"],
)
def test_vet_address_refuses_non_public(address: str) -> None:
    assert _web.vet_address(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_vet_address_allows_public(address: str) -> None:
    assert _web.vet_address(address) is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [("2130706433", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"),
     ("127.1", "127.0.0.1"), ("10.1", "10.0.0.1"), ("1.2.3.4.", "1.2.3.4"), ("example.com", None)],
)
def test_ip_literals_are_parsed_like_browsers_do(host: str, expected: str | None) -> None:
    parsed = _web.parse_ip_host(host)
    assert (str(parsed) if parsed else None) == expected


def _fetcher(server: _Server, **options: Any) -> Any:
    port = server.server_address[1]
    return make_fetch_url(allow_addresses={f"127.0.0.1:{port}"}, **options)


def _url(server: _Server, path: str, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{server.server_address[1]}{path}"


def _only_to_server(connects: list[Any], server: _Server) -> None:
    assert connects
    assert all(address == ("127.0.0.1", server.server_address[1]) for address in connects)


async def test_fetches_readable_text(server: _Server, dns: list[str], connects: list[Any]) -> None:
    text = await _fetcher(server).run({"url": _url(server, "/page", host="site.test")})
    assert text.startswith(f"URL: {_url(server, '/page', host='site.test')}\n")
    assert "# Test page" in text
    assert "Hello" in text
    assert "First paragraph." in text
    assert "- one" in text
    assert "alert" not in text
    assert "color:red" not in text
    assert "enable js" not in text
    _, headers = server.seen[-1]
    assert headers["Host"] == f"site.test:{server.server_address[1]}"
    assert dns == ["site.test"]
    _only_to_server(connects, server)


async def test_follows_safe_redirects(server: _Server, connects: list[Any]) -> None:
    text = await _fetcher(server).run({"url": _url(server, "/to-page")})
    assert "First paragraph." in text
    assert text.startswith(f"URL: {_url(server, '/page')}")
    _only_to_server(connects, server)


@pytest.mark.parametrize(
    "path",
    ["/to-private", "/to-metadata", "/to-localhost", "/to-loopback-other-port", "/to-decimal",
     "/to-mapped", "/to-file", "/to-rebind"],
)
async def test_redirects_to_forbidden_addresses_are_refused(
    server: _Server, path: str, dns: list[str], connects: list[Any]
) -> None:
    host = "rebind.test" if path == "/to-rebind" else "127.0.0.1"  # 2nd answer: 10.0.0.7
    with pytest.raises(ToolError, match=r"refused|only http"):
        await _fetcher(server).run({"url": _url(server, path, host=host)})
    _only_to_server(connects, server)
    assert len(server.seen) == 1


async def test_dns_rebinding_is_pinned_to_the_vetted_address(
    server: _Server, dns: list[str], connects: list[Any]
) -> None:
    text = await _fetcher(server).run({"url": _url(server, "/page", host="rebind.test")})
    assert "Hello" in text
    assert dns == ["rebind.test"]  # resolved once; the connection used that answer
    _only_to_server(connects, server)


async def test_redirect_loops_stop(server: _Server) -> None:
    with pytest.raises(ToolError, match="too many redirects"):
        await _fetcher(server, max_redirects=3).run({"url": _url(server, "/loop")})
    assert len(server.seen) == 4


async def test_size_cap_binary_and_errors(server: _Server) -> None:
    fetch = _fetcher(server, max_bytes=1_000, max_output_chars=100_000)
    big = await fetch.run({"url": _url(server, "/big")})
    assert "[truncated: only the first 1000 bytes were read]" in big
    assert big.count("a") < 1_100
    image = await fetch.run({"url": _url(server, "/image")})
    assert "binary content" in image
    assert "PNG" not in image
    plain = await fetch.run({"url": _url(server, "/plain")})
    assert plain.endswith("caf\u00e9")
    with pytest.raises(ToolError, match="HTTP 404"):
        await fetch.run({"url": _url(server, "/missing")})


async def test_loopback_is_refused_without_the_test_allow_list(
    server: _Server, connects: list[Any]
) -> None:
    with pytest.raises(ToolError, match="non-public"):
        await make_fetch_url().run({"url": _url(server, "/page")})
    assert connects == []
    assert server.seen == []


def test_html_to_text() -> None:
    assert html_to_text("<p>a&amp;b</p><script>x</script><br/>c") == "a&b\n\nc"


# -- web_search --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for scheme in ("http", "https", "all"):
        monkeypatch.delenv(f"{scheme}_proxy", raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def _base(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


async def test_searxng(server: _Server) -> None:
    search = make_web_search(
        backend="searxng", searxng_url=_base(server) + "/", limiter=RateLimiter()
    )
    result = json.loads(await search.run({"query": "chat shell"}))
    assert result["backend"] == "searxng"
    assert result["results"] == [
        {"title": f"Result {i} for chat shell", "url": f"https://example.org/{i}",
         "snippet": f"Snippet {i}"}
        for i in range(3)
    ]
    path, _ = server.seen[-1]
    assert parse_qs(urlsplit(path).query) == {"q": ["chat shell"], "format": ["json"]}


async def test_brave(server: _Server) -> None:
    search = make_web_search(
        backend="brave",
        brave_api_key="brave-key",
        brave_url=_base(server) + "/res/v1/web/search",
        limiter=RateLimiter(),
    )
    result = json.loads(await search.run({"query": "python"}))
    assert [r["url"] for r in result["results"]] == [f"https://brave.example/{i}" for i in range(3)]
    assert result["results"][0]["snippet"] == "About python number 0"


async def test_brave_with_a_bad_key_never_shows_it(server: _Server) -> None:
    search = make_web_search(
        backend="brave",
        brave_api_key="wrong-secret-key",
        brave_url=_base(server) + "/res/v1/web/search",
        limiter=RateLimiter(),
    )
    with pytest.raises(ToolError, match="HTTP 401") as caught:
        await search.run({"query": "python"})
    assert "wrong-secret-key" not in caught.value.message


async def test_tavily(server: _Server) -> None:
    search = make_web_search(
        backend="tavily", tavily_api_key="tavily-key", tavily_url=_base(server) + "/search",
        limiter=RateLimiter(),
    )
    result = json.loads(await search.run({"query": "news"}))
    assert [r["title"] for r in result["results"]] == ["Tavily 0", "Tavily 1", "Tavily 2"]


async def test_rate_limit(server: _Server) -> None:
    now = [1000.0]
    limiter = RateLimiter(clock=lambda: now[0])
    search = make_web_search(
        backend="searxng", searxng_url=_base(server), rate_per_minute=2, limiter=limiter
    )
    await search.run({"query": "a"})
    await search.run({"query": "b"})
    with pytest.raises(ToolError, match="limited to 2 queries per minute"):
        await search.run({"query": "c"})
    assert len(server.seen) == 2
    now[0] += 61
    await search.run({"query": "d"})
    assert len(server.seen) == 3


async def test_no_backend_is_a_clear_error() -> None:
    search = make_web_search(Settings())
    with pytest.raises(ToolError, match="no search backend is configured"):
        await search.run({"query": "x"})
    incomplete = make_web_search(backend="brave")
    with pytest.raises(ToolError, match="brave_api_key is not set"):
        await incomplete.run({"query": "x"})


def test_web_search_is_offered_only_when_configured(server: _Server) -> None:
    assert "web_search" not in ToolRegistry.default(Settings()).select()
    with pytest.raises(UserError, match="no search backend"):
        ToolRegistry.default(Settings()).select(["web_search"])
    settings = Settings(search_backend="searxng", searxng_url=_base(server))
    assert "web_search" in ToolRegistry.default(settings).select()
