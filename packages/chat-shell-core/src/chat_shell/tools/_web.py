"""``fetch_url`` and ``web_search``.

``fetch_url`` is the tool a prompt-injected model would use to reach the machine's own network,
so every hop is vetted: the scheme must be http(s); the host is parsed the way browsers parse
it (``2130706433``, ``0x7f.1`` and ``0177.0.0.1`` are all 127.0.0.1); the name is resolved
once, *every* address must be public, and the connection goes to that vetted address (the
``Host`` header and TLS SNI keep the name), so a second DNS answer cannot rebind it.
Redirects are followed by hand and each one goes through the same checks.

The whole call is bounded: one deadline covers the connection, every redirect, reading (at most
``max_bytes``, counted after gzip or deflate is undone, see ``_web_body``) and turning the bytes
into text, which runs in a worker process (``_page_text``) killed at the deadline, so a hostile
page can neither hold the event loop nor outlive the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import ipaddress
import json
import os
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin

from .._errors import ToolError, UserError
from .._tools import Tool
from . import _page_text
from ._page_text import PageKind, PageText, html_to_text
from ._web_body import read_capped

if TYPE_CHECKING:
    import ssl

    import httpx

    from .._config import Settings

__all__ = [
    "RateLimiter",
    "fetch_url_tool",
    "html_to_text",
    "make_fetch_url",
    "make_web_search",
    "resolve",
    "vet_address",
    "web_search_tool",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SearchBackend = Literal["searxng", "brave", "tavily"]

MAX_URL_CHARS = 2_048
MAX_SEARCH_ANSWER_BYTES = 1 << 20  # a search backend's answer, read at most
USER_AGENT = "chat-shell/0.1 (+https://github.com/chat-shell)"
BRAVE_URL = "https://api.search.brave.com/res/v1/web/search"
TAVILY_URL = "https://api.tavily.com/search"
_REDIRECTS = {301, 302, 303, 307, 308}
_HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?")
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml+xml")


# -- the HTTP client ---------------------------------------------------------------------------


_TLS: dict[bool, ssl.SSLContext] = {}  # by trust_env


def _load_http(trust_env: bool) -> ssl.SSLContext:
    import httpx

    # What httpx imports on its first client and its first request (httpcore, anyio's asyncio
    # backend), imported here rather than on the event loop.
    for module in ("httpcore", "anyio._backends._asyncio"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    return _TLS.setdefault(trust_env, httpx.create_ssl_context(trust_env=trust_env))


async def ssl_context(*, trust_env: bool) -> ssl.SSLContext:
    """The TLS context for the web tools, made once per process in a worker thread.

    httpx's first client imports some twenty modules and every new client loads the CA bundle:
    0.1–1 s of CPU that would otherwise hold the event loop on each call.
    """
    context = _TLS.get(trust_env)
    return context if context is not None else await asyncio.to_thread(_load_http, trust_env)


# -- addresses ---------------------------------------------------------------------------------


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (tests replace this function)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _ipv4_number(part: str) -> int | None:
    """One part of a browser-style IPv4 address: decimal, ``0x`` hex or leading-zero octal."""
    if re.fullmatch(r"0[xX][0-9a-fA-F]*", part):
        return int(part[2:] or "0", 16)
    if re.fullmatch(r"0[0-7]+", part):
        return int(part, 8)
    if re.fullmatch(r"[0-9]+", part):
        return int(part)
    return None


def parse_ip_host(host: str) -> IPAddress | None:
    """The address if ``host`` is an IP literal in any form a browser or libc accepts.

    Follows the WHATWG URL rules: a host whose last label is a number is an IPv4 address
    (``127.1``, ``2130706433``, ``0x7f.0.0.1``, ``0177.0.0.1``); one that cannot be parsed as
    one is refused rather than looked up.
    """
    if ":" in host:
        if "%" in host:
            raise ToolError("IPv6 zone identifiers are not allowed")
        try:
            return ipaddress.IPv6Address(host.strip("[]"))
        except ValueError:
            raise ToolError(f"{host!r} is not a valid IPv6 address") from None
    parts = host.split(".")
    if parts and parts[-1] == "":
        parts.pop()
    if not parts or _ipv4_number(parts[-1]) is None:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if len(parts) > 4 or any(n is None for n in numbers):
        raise ToolError(f"{host!r} is neither a host name nor a valid IP address")
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise ToolError(f"{host!r} is not a valid IPv4 address")
    value = values[-1]
    for index, number in enumerate(values[:-1]):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _embedded(address: IPAddress) -> list[IPAddress]:
    """The address and every IPv4 address hidden inside an IPv6 one."""
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            found.append(address.ipv4_mapped)
        if address.sixtofour:
            found.append(address.sixtofour)
        if address.teredo:
            found.extend(address.teredo)
        packed = int(address)
        if packed >> 32 in (0, 0x64FF9B << 64) or (packed >> 80) == 0x64FF9B0001:
            found.append(ipaddress.IPv4Address(packed & 0xFFFFFFFF))  # IPv4-compatible, NAT64
    return found


# Special-purpose ranges checked by name, whatever this Python's ipaddress tables say.
_BLOCKED = [
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
]


def vet_address(address: str | IPAddress) -> str | None:
    """Why ``address`` may not be fetched (loopback, private …), or ``None`` if it is public."""
    try:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    except ValueError:
        return "not an IP address"
    for candidate in _embedded(ip):
        for network in _BLOCKED:
            if candidate.version == network.version and candidate in network:
                return f"{candidate} is in the special-purpose range {network}"
        for label, flag in (
            ("unspecified", candidate.is_unspecified),
            ("loopback", candidate.is_loopback),
            ("private", candidate.is_private),
            ("link-local", candidate.is_link_local),
            ("multicast", candidate.is_multicast),
            ("reserved", candidate.is_reserved),
            ("site-local", getattr(candidate, "is_site_local", False)),
            ("not globally routable", not candidate.is_global),
        ):
            if flag:
                return f"{candidate} is {label}"
    return None


# -- fetch_url ---------------------------------------------------------------------------------


class _Fetcher:
    def __init__(
        self,
        *,
        max_bytes: int,
        timeout: float,
        max_redirects: int,
        max_output_chars: int,
        allow_addresses: Collection[str],
    ) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.max_output_chars = max_output_chars
        self.allow_addresses = frozenset(allow_addresses)

    async def _vet(self, url: str) -> tuple[httpx.URL, str, str]:
        """The URL, the address to connect to, and the ``Host`` header — or ``ToolError``."""
        import httpx

        if len(url) > MAX_URL_CHARS:
            raise ToolError(f"the URL is too long (limit {MAX_URL_CHARS} characters)")
        try:
            parsed = httpx.URL(url.strip())
        except (httpx.InvalidURL, ValueError) as exc:
            raise ToolError(f"not a valid URL: {exc}") from None
        if parsed.scheme not in ("http", "https"):
            scheme = parsed.scheme or "?"
            raise ToolError(f"only http and https URLs can be fetched, not {scheme!r}")
        if parsed.userinfo:
            raise ToolError("URLs with a user name or password are not allowed")
        host = parsed.raw_host.decode("ascii").lower()
        if not host:
            raise ToolError("the URL has no host")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        literal = parse_ip_host(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            if not _HOST_NAME.fullmatch(host):
                raise ToolError(f"{host!r} is not a valid host name")
            bare = host.rstrip(".")
            if bare == "localhost" or bare.endswith(".localhost"):
                raise ToolError(f"refused: {host!r} is this machine")
            try:
                addresses = await resolve(bare, port)
            except OSError as exc:
                raise ToolError(f"cannot resolve {bare!r}: {exc}") from None
            if not addresses:
                raise ToolError(f"cannot resolve {bare!r}: no addresses")
        for address in addresses:
            if f"{address}:{port}" in self.allow_addresses:
                continue
            problem = vet_address(address.split("%")[0])
            if problem is not None:
                raise ToolError(f"refused: {host!r} resolves to a non-public address ({problem})")
        default_port = parsed.port is None
        host_header = host if default_port else f"{host}:{port}"
        if ":" in host and not host.startswith("["):
            host_header = f"[{host}]" if default_port else f"[{host}]:{port}"
        return parsed, addresses[0], host_header

    async def fetch(self, url: str) -> str:
        """Fetch a web page (http or https) and return its readable text.

        Only public internet addresses can be fetched. Pages are cut at a size limit.

        Args:
            url: the page's address, e.g. "https://example.com/article"
        """
        try:
            async with asyncio.timeout(self.timeout):
                return await self._fetch(url)
        except TimeoutError:
            raise ToolError(f"fetching {url[:200]} took longer than {self.timeout:g} s") from None

    async def _fetch(self, url: str) -> str:
        context = await ssl_context(trust_env=False)
        import httpx

        headers = {
            "User-Agent": USER_AGENT,
            "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5",
            "Accept-Encoding": "identity",
        }
        async with httpx.AsyncClient(
            trust_env=False,
            verify=context,
            follow_redirects=False,
            timeout=self.timeout,
            headers=headers,
        ) as client:
            current = url
            for _ in range(self.max_redirects + 1):
                target, address, host_header = await self._vet(current)
                pinned = target.copy_with(host=address)
                extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
                request = client.build_request(
                    "GET", pinned, headers={"Host": host_header}, extensions=extensions
                )
                try:
                    response = await client.send(request, stream=True)
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                    raise ToolError(f"fetching {target} failed: {problem}") from None
                try:
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECTS and location:
                        current = urljoin(str(target), location)
                        continue
                    if response.status_code >= 400:
                        status = f"{response.status_code} {response.reason_phrase}"
                        raise ToolError(f"HTTP {status} from {target}")
                    body, truncated = await read_capped(response, self.max_bytes)
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                    raise ToolError(f"reading {target} failed: {problem}") from None
                finally:
                    await response.aclose()
                return await self._render(str(target), response, body, truncated)
        raise ToolError(f"too many redirects (more than {self.max_redirects})")

    async def _render(
        self, url: str, response: httpx.Response, body: bytes, truncated: bool
    ) -> str:
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        head = f"URL: {url}\nContent-Type: {content_type or 'unknown'}\n\n"
        if content_type and not content_type.startswith(_TEXT_TYPES):
            return f"{head}[binary content, {len(body)} bytes read, not shown]"
        kind: PageKind = "text"
        if content_type in ("text/html", "application/xhtml+xml"):
            kind = "html"
        elif not content_type:
            kind = "sniff"
        room = max(0, self.max_output_chars - len(head) - _NOTES_ROOM)
        page = await _text_in_worker(
            body, charset=response.charset_encoding, kind=kind, max_chars=room
        )
        notes = [page["note"]] if page["note"] else []
        if truncated:
            notes.append(f"[truncated: only the first {self.max_bytes} bytes were read]")
        if page["more"]:
            notes.append(f"[truncated: only the first {room} characters of text are shown]")
        return head + page["text"] + "".join(f"\n\n{note}" for note in notes)


_NOTES_ROOM = 300  # characters kept for the notes under the text


async def _text_in_worker(body: bytes, **options: Any) -> PageText:
    """``_page_text.page_text(body, **options)`` in a child process.

    The child is killed if the caller is cancelled (the fetch's deadline), so the CPU work of a
    hostile page ends with the call. It gets this interpreter and this ``sys.path``.
    """
    if not sys.executable:
        raise ToolError("fetch_url needs a Python interpreter for its text worker (none found)")
    path = os.pathsep.join(entry for entry in sys.path if os.path.isabs(entry))
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-P",
            _page_text.__file__,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )
    except (OSError, NotImplementedError) as exc:
        raise ToolError(f"fetch_url could not start its text worker: {exc}") from None
    try:
        output, errors = await process.communicate(json.dumps(options).encode() + b"\n" + body)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        last = (errors.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        raise ToolError(f"the page's text could not be extracted: {last[:300]}")
    answer: PageText = json.loads(output)
    return answer


def make_fetch_url(
    *,
    max_bytes: int = 2_000_000,
    timeout: float = 15.0,
    max_redirects: int = 5,
    max_output_chars: int = 50_000,
    allow_addresses: Collection[str] = (),
) -> Tool:
    """A ``fetch_url`` tool with these limits.

    ``allow_addresses`` is for tests only and empty by default: ``"127.0.0.1:8080"`` entries
    exempt that exact address and port from the public-address rule.
    """
    fetcher = _Fetcher(
        max_bytes=max_bytes,
        timeout=timeout,
        max_redirects=max_redirects,
        max_output_chars=max_output_chars,
        allow_addresses=allow_addresses,
    )
    return Tool(
        fetcher.fetch, name="fetch_url", timeout=timeout + 5, max_output_chars=max_output_chars
    )


def fetch_url_tool(settings: Settings) -> Tool:
    """Entry point of ``fetch_url``."""
    return make_fetch_url(max_bytes=settings.fetch_max_bytes, timeout=settings.fetch_timeout)


# -- web_search --------------------------------------------------------------------------------


class RateLimiter:
    """At most ``n`` calls in any 60 s window; a call over the limit is refused, not delayed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self, per_minute: int) -> None:
        with self._lock:
            now = self.clock()
            while self._calls and self._calls[0] <= now - 60:
                self._calls.popleft()
            if len(self._calls) >= per_minute:
                wait = 60 - (now - self._calls[0])
                raise ToolError(
                    f"web_search is limited to {per_minute} queries per minute; "
                    f"try again in {wait:.0f} s"
                )
            self._calls.append(now)


_PROCESS_LIMITER = RateLimiter()


def _clean(text: Any, limit: int = 500) -> str:
    if not isinstance(text, str):
        return ""
    text = text[: limit * 20]  # runs on the event loop: parse no more than a snippet needs
    plain = html_to_text(text) if "<" in text else text
    plain = " ".join(plain.split())
    return plain if len(plain) <= limit else plain[: limit - 1] + "…"


class _Searcher:
    def __init__(
        self,
        backend: SearchBackend | None,
        *,
        searxng_url: str | None,
        brave_api_key: str | None,
        tavily_api_key: str | None,
        rate_per_minute: int,
        limiter: RateLimiter,
        brave_url: str,
        tavily_url: str,
        timeout: float,
    ) -> None:
        self.backend = backend
        self.searxng_url = searxng_url
        self.brave_api_key = brave_api_key
        self.tavily_api_key = tavily_api_key
        self.rate_per_minute = rate_per_minute
        self.limiter = limiter
        self.brave_url = brave_url
        self.tavily_url = tavily_url
        self.timeout = timeout

    def problem(self) -> str | None:
        """What is missing from the configuration, if anything."""
        if self.backend is None:
            return (
                "no search backend is configured: set search_backend to 'searxng' (with "
                "searxng_url), 'brave' (with brave_api_key) or 'tavily' (with tavily_api_key)"
            )
        if self.backend == "searxng" and not self.searxng_url:
            return "search_backend is 'searxng' but searxng_url is not set"
        if self.backend == "brave" and not self.brave_api_key:
            return "search_backend is 'brave' but brave_api_key is not set"
        if self.backend == "tavily" and not self.tavily_api_key:
            return "search_backend is 'tavily' but tavily_api_key is not set"
        return None

    async def search(self, query: str) -> dict[str, Any]:
        """Search the web and return the top 3 results (title, url, snippet).

        Args:
            query: what to search for
        """
        problem = self.problem()
        if problem:
            raise ToolError(problem)
        query = query.strip()
        if not query:
            raise ToolError("the query is empty")
        if len(query) > 400:
            raise ToolError("the query is too long (limit 400 characters)")
        self.limiter.acquire(self.rate_per_minute)
        context = await ssl_context(trust_env=True)
        import httpx

        try:
            async with (
                asyncio.timeout(self.timeout),
                httpx.AsyncClient(timeout=self.timeout, verify=context) as client,
            ):
                response = await client.send(self._request(client, query), stream=True)
                try:
                    self._check_status(response.status_code)
                    body, cut = await read_capped(response, MAX_SEARCH_ANSWER_BYTES)
                finally:
                    await response.aclose()
        except (httpx.HTTPError, TimeoutError) as exc:
            raise ToolError(f"the {self.backend} search failed: {type(exc).__name__}") from None
        if cut:
            raise ToolError(
                f"the {self.backend} search answered more than {MAX_SEARCH_ANSWER_BYTES} bytes"
            )
        # decoding and lxml's first import stay off the event loop
        results = await asyncio.to_thread(self._parse, body)
        return {"query": query, "backend": self.backend, "results": results}

    def _request(self, client: httpx.AsyncClient, query: str) -> httpx.Request:
        if self.backend == "searxng":
            assert self.searxng_url is not None
            base = self.searxng_url.rstrip("/")
            return client.build_request(
                "GET", f"{base}/search", params={"q": query, "format": "json"}
            )
        if self.backend == "brave":
            assert self.brave_api_key is not None
            return client.build_request(
                "GET",
                self.brave_url,
                params={"q": query, "count": 3},
                headers={"Accept": "application/json", "X-Subscription-Token": self.brave_api_key},
            )
        assert self.tavily_api_key is not None
        return client.build_request(
            "POST",
            self.tavily_url,
            json={"query": query, "max_results": 3},
            headers={"Authorization": f"Bearer {self.tavily_api_key}"},
        )

    def _check_status(self, status: int) -> None:
        if status in (401, 403):
            hint = (
                " (enable the json format under search.formats in SearXNG's settings.yml)"
                if self.backend == "searxng"
                else " (check the API key)"
            )
            raise ToolError(f"the {self.backend} search was refused: HTTP {status}{hint}")
        if status == 429:
            raise ToolError(f"the {self.backend} search is rate-limited (HTTP 429); try later")
        if status >= 400:
            raise ToolError(f"the {self.backend} search failed: HTTP {status}")

    def _parse(self, body: bytes) -> list[dict[str, str]]:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise ToolError(f"the {self.backend} search did not answer JSON") from None
        return self._results(data)

    def _results(self, data: Any) -> list[dict[str, str]]:
        if not isinstance(data, dict):
            return []
        if self.backend == "brave":
            web = data.get("web")
            raw = web.get("results") if isinstance(web, dict) else None
            snippet_key = "description"
        else:
            raw = data.get("results")
            snippet_key = "content"
        results = []
        for item in raw if isinstance(raw, list) else []:
            if not isinstance(item, dict) or not isinstance(item.get("url"), str):
                continue
            results.append(
                {
                    "title": _clean(item.get("title"), 200),
                    "url": item["url"][:MAX_URL_CHARS],
                    "snippet": _clean(item.get(snippet_key)),
                }
            )
            if len(results) == 3:
                break
        return results


def make_web_search(
    settings: Settings | None = None,
    *,
    backend: SearchBackend | None = None,
    searxng_url: str | None = None,
    brave_api_key: str | None = None,
    tavily_api_key: str | None = None,
    rate_per_minute: int | None = None,
    limiter: RateLimiter | None = None,
    brave_url: str = BRAVE_URL,
    tavily_url: str = TAVILY_URL,
    timeout: float = 10.0,
) -> Tool:
    """A ``web_search`` tool; arguments override ``settings``.

    Without a configured backend the tool still exists and answers every call with an error
    that says what to configure. ``limiter`` defaults to one shared by the whole process.
    """

    def pick(value: Any, key: str) -> Any:
        return value if value is not None else getattr(settings, key, None)

    rate = pick(rate_per_minute, "search_rate_per_minute") or 10
    if rate < 1:
        raise UserError("rate_per_minute must be at least 1")
    searcher = _Searcher(
        pick(backend, "search_backend"),
        searxng_url=pick(searxng_url, "searxng_url"),
        brave_api_key=pick(brave_api_key, "brave_api_key"),
        tavily_api_key=pick(tavily_api_key, "tavily_api_key"),
        rate_per_minute=rate,
        limiter=limiter or _PROCESS_LIMITER,
        brave_url=brave_url,
        tavily_url=tavily_url,
        timeout=timeout,
    )
    return Tool(searcher.search, name="web_search", timeout=timeout + 5, max_output_chars=5_000)


def web_search_tool(settings: Settings) -> Tool:
    """Entry point of ``web_search``: offered only when a backend is configured."""
    probe = _Searcher(
        settings.search_backend,
        searxng_url=settings.searxng_url,
        brave_api_key=settings.brave_api_key,
        tavily_api_key=settings.tavily_api_key,
        rate_per_minute=settings.search_rate_per_minute,
        limiter=_PROCESS_LIMITER,
        brave_url=BRAVE_URL,
        tavily_url=TAVILY_URL,
        timeout=10.0,
    )
    problem = probe.problem()
    if problem:
        raise UserError(f"web_search is off: {problem}")
    return make_web_search(settings)
