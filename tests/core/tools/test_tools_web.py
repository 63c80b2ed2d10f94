"""fetch_url against crafted URLs (no connection to a forbidden address, ever), against hostile
pages (markup, charsets, compression bombs) that must neither hold the event loop nor outrun
the limits, and web_search against local fakes of SearXNG, Brave and Tavily speaking their JSON
formats."""

from __future__ import annotations

import asyncio
import codecs
import functools
import json
import os
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from chat_shell import Settings, ToolError, ToolRegistry, UserError
from chat_shell.tools import (
    RateLimiter,
    _page_text,
    _web,
    html_to_text,
    make_fetch_url,
    make_web_search,
)

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

    def _drip(self, body: bytes, seconds: float) -> None:
        """Send ``body`` in 20 pieces spread over ``seconds``."""
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        step = len(body) // 20 + 1
        try:
            for start in range(0, len(body), step):
                self.wfile.write(body[start : start + step])
                self.wfile.flush()
                time.sleep(seconds / 20)
        except OSError:
            pass  # the client gave up

    def do_GET(self) -> None:
        self.server.seen.append((self.path, dict(self.headers)))
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        port = self.server.server_address[1]
        name = url.path.rpartition("/")[2]
        if url.path.startswith("/hostile/"):
            self._send(200, hostile_page(name), "text/html")
            return
        if url.path.startswith("/charset/"):
            body = bytes.fromhex(query["hex"][0]) if "hex" in query else slow_punycode()
            self._send(200, body, f"text/html; charset={name}")
            return
        if url.path == "/huge/search":  # a SearXNG that answers far too much
            self._send(200, b'{"results": [' + b"1, " * 1_000_000 + b"1]}", "application/json")
            return
        if url.path == "/bomb/search":
            self._send(200, _gzip_bomb(), "application/json", Content_Encoding="gzip")
            return
        if url.path.startswith("/encoded/"):
            coding, body = ENCODED[name]()
            self._send(200, body, "text/plain", Content_Encoding=coding)
            return
        if url.path.startswith("/late/"):
            self._drip(hostile_page(name), float(query["seconds"][0]))
            return
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


# -- hostile pages ---------------------------------------------------------------------------

CAP = 2_000_000  # fetch_max_bytes' default: every hostile page is as big as a page can be

# Markup shapes that make HTML parsers slow (quadratic in html.parser, the first three; deep
# nesting in lexbor) or that stress a parser's recovery: each repeated up to the cap.
HOSTILE_HTML: dict[str, tuple[str, str]] = {
    "open-tags": ("", "<a"),
    "open-comments": ("", "<!--"),
    "end-tag-starts": ("", "</"),
    "bogus-comments": ("", "<!"),
    "processing-instructions": ("", "<?"),
    "cdata": ("", "<![CDATA["),
    "character-references": ("", "&#"),
    "entities": ("", "&amp"),
    "attributes": ("<p", " a="),
    "unclosed-quote": ('<p a="', "x"),
    "nested-divs": ("", "<div>"),
    "misnested-formatting": ("", "<b><i></b></i>"),
    "anchors": ("", "<a>x"),
    "nested-tables": ("", "<table>"),
    "table-cells": ("", "<table><tr><td>"),
    "list-items": ("", "<li>x"),
    "options": ("<select>", "<option>"),
    "nested-svg": ("", "<svg>"),
    "script-comments": ("<script>", "<!--<script>"),
    "nul-bytes": ("", "a\0<"),
}


@functools.cache
def hostile_page(name: str) -> bytes:
    head, unit = HOSTILE_HTML[name]
    return (head + unit * ((CAP - len(head)) // len(unit))).encode()


@functools.cache
def slow_punycode() -> bytes:
    """2 MB that CPython's punycode codec decodes in quadratic time (160 kB take seconds)."""
    return b"x" * (CAP // 2) + b"-" + b"a" * (CAP // 2 - 1)


BOMB_SIZE = 64 * 1024 * 1024  # what each bomb inflates to


def _compress(data_size: int, wbits: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = b"a" * (1024 * 1024)
    parts = [compressor.compress(block) for _ in range(data_size // len(block))]
    return b"".join([*parts, compressor.flush()])


@functools.cache
def _gzip_bomb() -> bytes:
    return _compress(BOMB_SIZE, 16 + zlib.MAX_WBITS)


def _stacked_gzip() -> bytes:
    outer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return outer.compress(_gzip_bomb()) + outer.flush()


# name -> (Content-Encoding, body); the bombs are a few kB on the wire
ENCODED: dict[str, Any] = {
    "gzip": lambda: ("gzip", _gzip_bomb()),
    "x-gzip": lambda: ("x-gzip", _gzip_bomb()),
    "deflate": lambda: ("deflate", _compress(BOMB_SIZE, zlib.MAX_WBITS)),
    "raw-deflate": lambda: ("deflate", _compress(BOMB_SIZE, -zlib.MAX_WBITS)),
    "gzip-identity": lambda: ("identity, gzip", _gzip_bomb()),
    "stacked-gzip": lambda: ("gzip, gzip", _stacked_gzip()),
    "stacked-mixed": lambda: ("deflate, gzip", _stacked_gzip()),
    "br": lambda: ("br", b"\x1b\x03\x00\xf8\xa5@\xc2\x82\x03"),
    "zstd": lambda: ("zstd", b"(\xb5/\xfd\x00X!\x00\x00abc"),
    "compress": lambda: ("compress", b"\x1f\x9d\x90a"),
    "made-up": lambda: ("x-made-up", b"abc"),
    "corrupt-gzip": lambda: ("gzip", b"\x1f\x8b\x08\x00" + b"\xff" * 100),
    "small-gzip": lambda: ("gzip", _small(16 + zlib.MAX_WBITS)),
    "small-deflate": lambda: ("deflate", _small(zlib.MAX_WBITS)),
    "small-raw-deflate": lambda: ("deflate", _small(-zlib.MAX_WBITS)),
}


def _small(wbits: int) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return compressor.compress("caf\u00e9 au lait".encode()) + compressor.flush()


@dataclass
class LoopWatch:
    """What the event loop did while a 5 ms ticker ran: the longest gap between ticks (wall
    time) and the most CPU time the loop's thread spent in one gap (work that held it)."""

    longest_gap: float = 0.0
    most_cpu: float = 0.0


@asynccontextmanager
async def watch_loop() -> AsyncIterator[LoopWatch]:
    watch = LoopWatch()
    loop = asyncio.get_running_loop()

    async def tick() -> None:
        while True:
            wall, cpu = loop.time(), time.thread_time()
            await asyncio.sleep(0.005)
            watch.longest_gap = max(watch.longest_gap, loop.time() - wall - 0.005)
            watch.most_cpu = max(watch.most_cpu, time.thread_time() - cpu)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    try:
        yield watch
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)


# The loop may never be held for more than ~50 ms by a tool's work (the CPU bound). Wall-time
# gaps also count scheduling on a busy machine, so they get a generous margin; the old code held
# the loop for seconds to hours on these pages.
MAX_LOOP_CPU = 0.05
MAX_LOOP_GAP = 0.25


def worker_pids() -> set[int]:
    """This process's live text workers (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        if parent == os.getpid() and b"_page_text.py" in command:
            found.add(int(entry.name))
    return found


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
    [
        "127.0.0.1",
        "10.0.0.1",
        "::1",
        "::ffff:192.168.0.1",
        "64:ff9b::a00:1",
        "fd12::1",
        "2002:c0a8:0101::1",
        "0.0.0.0",
        "100.64.0.1",
        "192.0.2.1",
        "198.51.100.7",
    ],
)
def test_vet_address_refuses_non_public(address: str) -> None:
    assert _web.vet_address(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_vet_address_allows_public(address: str) -> None:
    assert _web.vet_address(address) is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("1.2.3.4.", "1.2.3.4"),
        ("example.com", None),
    ],
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
    [
        "/to-private",
        "/to-metadata",
        "/to-localhost",
        "/to-loopback-other-port",
        "/to-decimal",
        "/to-mapped",
        "/to-file",
        "/to-rebind",
    ],
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
    assert html_to_text("<ul><li>a<li>b</ul><p>c") == "- a\n- b\n\nc"
    assert html_to_text("<title>T</title><h1>x</h1>a<br>b<hr>c") == "# T\n\nx\na\nb\nc"
    assert html_to_text("<div>a<svg><text>no</text></svg><math>m</math>b</div>") == "ab"
    # libxml2's tree builder stops at 256 levels and drops the rest; the stream does not
    deep = "<div>" * 300 + "deep" + "</div>" * 300 + "<p>after</p>"
    assert html_to_text(deep) == "deep\n\nafter"


# -- hostile pages: bounded time, a free event loop ------------------------------------------


@pytest.mark.parametrize("name", list(HOSTILE_HTML))
async def test_hostile_markup_at_the_size_cap_neither_holds_the_loop_nor_times_out(
    server: _Server, name: str
) -> None:
    fetch = _fetcher(server, timeout=10)
    started = time.monotonic()
    async with watch_loop() as watch:
        text = await fetch.run({"url": _url(server, f"/hostile/{name}")})
    assert time.monotonic() - started < 10
    assert text.startswith(f"URL: {_url(server, f'/hostile/{name}')}\nContent-Type: text/html")
    assert len(text) <= 50_000
    assert watch.most_cpu < MAX_LOOP_CPU, watch
    assert watch.longest_gap < MAX_LOOP_GAP, watch
    if name in ("anchors", "list-items"):
        assert text.count("x") > 10_000  # the text was really read, up to the output cap
        assert "[truncated: only the first" in text


def test_there_are_enough_hostile_shapes() -> None:
    assert len(HOSTILE_HTML) >= 15
    assert all(len(hostile_page(name)) > CAP - 20 for name in HOSTILE_HTML)


def test_html_to_text_is_linear_on_what_makes_html_parser_quadratic() -> None:
    # html.parser took 3 s for 40 kB of "<a" here, 23 s for 120 kB; this is 2 MB of each.
    for name in ("open-tags", "open-comments", "nested-divs", "misnested-formatting"):
        started = time.process_time()
        html_to_text(hostile_page(name).decode())
        assert time.process_time() - started < 5, name


SLOW_OR_ODD_CHARSETS = [
    "punycode",
    "idna",
    "utf-7",
    "raw-unicode-escape",
    "unicode_escape",
    "utf-32",
    "rot13",
    "base64",
    "hex",
    "uu",
    "x-made-up",
    "utf-8x",
    "a" * 200,
]


@pytest.mark.parametrize("label", SLOW_OR_ODD_CHARSETS)
async def test_slow_and_unknown_charsets_are_read_as_utf8(server: _Server, label: str) -> None:
    fetch = _fetcher(server, timeout=10, max_output_chars=200_000)
    async with watch_loop() as watch:
        text = await fetch.run({"url": _url(server, f"/charset/{label}")})
    assert "is not supported; the text was decoded as UTF-8]" in text
    assert "x" * 1000 in text
    assert watch.most_cpu < MAX_LOOP_CPU, watch


@pytest.mark.parametrize(
    ("label", "text"),
    [
        ("windows-1251", "\u041f\u0440\u0438\u0432\u0435\u0442"),
        ("KOI8-R", "\u041f\u0440\u0438\u0432\u0435\u0442"),
        ("Shift_JIS", "\u65e5\u672c\u8a9e"),
        ("EUC-JP", "\u65e5\u672c\u8a9e"),
        ("iso-2022-jp", "\u65e5\u672c\u8a9e"),
        ("gb2312", "\u4e2d\u6587"),
        ("GBK", "\u4e2d\u6587"),
        ("big5", "\u4e2d\u6587"),
        ("euc-kr", "\ud55c\uad6d\uc5b4"),
        ("iso-8859-2", "\u0141\xf3d\u017a"),
        ("iso_8859-15", "\u20ac"),
        ("macintosh", "caf\xe9"),
        ("utf-16le", "\u2603 snow"),
    ],
)
async def test_allowed_charsets_decode_as_browsers_do(
    server: _Server, label: str, text: str
) -> None:
    codec = _page_text.charset_codec(label)
    assert codec is not None
    body = f"<p>{text}</p>".encode(codec)
    page = await _fetcher(server).run({"url": _url(server, f"/charset/{label}?hex={body.hex()}")})
    assert page.endswith(f"\n\n{text}")


async def test_latin1_means_windows_1252_and_a_bom_wins(server: _Server) -> None:
    fetch = _fetcher(server)
    latin1 = b"<p>80 \x80".hex()
    euro = await fetch.run({"url": _url(server, f"/charset/iso-8859-1?hex={latin1}")})
    assert euro.endswith("80 \u20ac")
    bom = "\ufeff<p>caf\u00e9".encode("utf-16-le")
    text = await fetch.run({"url": _url(server, f"/charset/koi8-r?hex={bom.hex()}")})
    assert text.endswith("caf\u00e9")


def test_every_allowed_charset_is_a_text_codec() -> None:
    for label, codec in _page_text._LABELS.items():
        assert codecs.lookup(codec)._is_text_encoding, (label, codec)
    assert _page_text.charset_codec("punycode") is None


async def test_the_text_worker_is_killed_at_the_deadline() -> None:
    body = hostile_page("anchors") * 10  # ~10 s of parsing: it cannot finish in time
    before = worker_pids()
    seen: set[int] = set()

    async def spot() -> None:
        while True:
            seen.update(worker_pids() - before)
            await asyncio.sleep(0.02)

    spotter = asyncio.create_task(spot())
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1.0):
            await _web._text_in_worker(body, charset=None, kind="html", max_chars=1000)
    spotter.cancel()
    assert time.monotonic() - started < 2.0
    assert seen, "the worker was never seen running"
    assert not any(Path(f"/proc/{pid}").exists() for pid in seen)


async def test_the_deadline_covers_fetching_and_extracting_together(server: _Server) -> None:
    # The body arrives just before the limit; its text cannot be made in what is left.
    fetch = _fetcher(server, timeout=1.5)
    started = time.monotonic()
    async with watch_loop() as watch:
        with pytest.raises(ToolError, match=r"took longer than 1.5 s"):
            await fetch.run({"url": _url(server, "/late/anchors?seconds=1.4")})
    assert time.monotonic() - started < 1.5 + 1
    assert watch.most_cpu < MAX_LOOP_CPU, watch
    await asyncio.sleep(0)
    assert worker_pids() == set()


# -- compressed answers: the cap counts decoded bytes -------------------------------------


@pytest.mark.parametrize("name", ["gzip", "x-gzip", "deflate", "raw-deflate", "gzip-identity"])
async def test_compression_bombs_stop_at_the_cap(server: _Server, name: str) -> None:
    _, wire = ENCODED[name]()
    assert 500 * len(wire) < BOMB_SIZE  # a bomb indeed
    fetch = _fetcher(server, max_bytes=1_000_000, max_output_chars=5_000)
    await fetch.run({"url": _url(server, "/page")})  # the first call's imports are not counted
    tracemalloc.start()
    try:
        text = await fetch.run({"url": _url(server, f"/encoded/{name}")})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12_000_000, f"{peak:,} bytes at peak for a {BOMB_SIZE:,}-byte bomb"
    assert "[truncated: only the first 1000000 bytes were read]" in text
    assert text.count("a") > 1_000
    assert len(text) <= 5_000


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("stacked-gzip", r"stacked encodings \(gzip, gzip\)"),
        ("stacked-mixed", r"stacked encodings \(deflate, gzip\)"),
        ("br", "encoded as 'br'"),
        ("zstd", "encoded as 'zstd'"),
        ("compress", "encoded as 'compress'"),
        ("made-up", "encoded as 'x-made-up'"),
        ("corrupt-gzip", "gzip data is corrupt"),
    ],
)
async def test_stacked_unknown_and_corrupt_encodings_are_refused(
    server: _Server, name: str, problem: str
) -> None:
    ENCODED[name]()
    await _fetcher(server).run({"url": _url(server, "/page")})
    tracemalloc.start()
    try:
        with pytest.raises(ToolError, match=problem):
            await _fetcher(server).run({"url": _url(server, f"/encoded/{name}")})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12_000_000


@pytest.mark.parametrize("name", ["small-gzip", "small-deflate", "small-raw-deflate"])
async def test_a_single_gzip_or_deflate_is_still_read(server: _Server, name: str) -> None:
    text = await _fetcher(server).run({"url": _url(server, f"/encoded/{name}")})
    assert text.endswith("\n\ncaf\u00e9 au lait")


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
        {
            "title": f"Result {i} for chat shell",
            "url": f"https://example.org/{i}",
            "snippet": f"Snippet {i}",
        }
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
        backend="tavily",
        tavily_api_key="tavily-key",
        tavily_url=_base(server) + "/search",
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


@pytest.mark.parametrize("answer", ["huge", "bomb"])
async def test_a_search_answer_beyond_the_cap_is_refused(server: _Server, answer: str) -> None:
    search = make_web_search(
        backend="searxng", searxng_url=f"{_base(server)}/{answer}", limiter=RateLimiter()
    )
    tracemalloc.start()
    try:
        with pytest.raises(ToolError, match="answered more than 1048576 bytes"):
            await search.run({"query": "x"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12_000_000


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
