"""/docs and /redoc work without internet: every script, style and icon they load comes from
the server itself, and the server serves each of them."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from chat_shell.testing import ScriptedModelServer
from http_support import ThreadServer, make_settings

KEY = "docs-key-0123456789abcdef"
CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


class Assets(HTMLParser):
    """The URLs a page loads: scripts, stylesheets, icons, images, frames."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href", "spec-url", "data"):
            if values.get(name) and tag in ("script", "link", "img", "iframe", "redoc", "object"):
                self.urls.append(str(values[name]))
        self._in_script = tag == "script" and not values.get("src")

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_scripts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


@pytest.fixture(scope="module")
def secured(
    upstream: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadServer]:
    """A server that wants an API key: the docs and their files still need none."""
    home: Path = tmp_path_factory.mktemp("docs")
    running = ThreadServer(make_settings(upstream.url, home, api_keys=[KEY])).start()
    yield running
    running.stop()


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_only_what_the_server_serves(secured: ThreadServer, page: str) -> None:
    response = httpx.get(secured.url + page, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    parser = Assets()
    parser.feed(response.text)
    assert parser.urls, "the page loads nothing: not the page we expect"
    origin = urlsplit(secured.url).netloc
    assets = []
    for url in parser.urls:
        absolute = urljoin(secured.url + page, url)
        assert urlsplit(absolute).netloc == origin, f"{page} loads {url} from elsewhere"
        assets.append(absolute)
    for script in parser.inline_scripts:
        assert "http://" not in script
        assert "https://" not in script
    assert "fonts.googleapis" not in response.text
    for asset in assets:
        got = httpx.get(asset, timeout=10)  # no Authorization header
        assert got.status_code == 200, asset
        assert got.content, asset
        suffix = Path(urlsplit(asset).path).suffix
        if suffix in CONTENT_TYPES:
            assert CONTENT_TYPES[suffix] in got.headers["content-type"], (asset, got.headers)
        elif asset.endswith("openapi.json"):
            assert got.json()["info"]["title"] == "chat-shell"


def test_the_swagger_page_gets_the_swagger_bundle(secured: ThreadServer) -> None:
    parser = Assets()
    parser.feed(httpx.get(secured.url + "/docs", timeout=10).text)
    scripts = [url for url in parser.urls if url.endswith(".js")]
    styles = [url for url in parser.urls if url.endswith(".css")]
    assert any("swagger-ui-bundle" in url for url in scripts)
    assert styles
    bundle = httpx.get(urljoin(secured.url, scripts[0]), timeout=10).text
    assert "SwaggerUIBundle" in bundle
    # the page asks for the schema by a relative URL, and the validator badge is off
    (init,) = parser.inline_scripts[-1:]
    assert "url: '/openapi.json'" in init
    assert '"validatorUrl": null' in init
