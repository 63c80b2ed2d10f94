"""The chat page at ``/`` and its files, served from the installed package (so this also proves
the wheel ships them), under a strict Content-Security-Policy; ``GET /v1/config`` for its model
picker. The page itself is exercised in a browser by tests/e2e/test_web_page.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

import httpx
import pytest
from chat_shell.testing import ScriptedModelServer
from http_support import MODEL, ThreadServer, assert_error_shape, make_settings

KEY = "page-key-0123456789abcdef"


class _Page(HTMLParser):
    """What the page loads, and anything inline (which the policy would block)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._tag = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag = tag
        values = dict(attrs)
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.inline.append(f"{tag} {name}")
            if name in ("src", "href") and value is not None:
                self.urls.append(value)
        if tag == "script" and "src" not in values:
            self.inline.append("script")
        if tag == "style":
            self.inline.append("style")

    def handle_data(self, data: str) -> None:
        if self._tag == "script" and data.strip():
            self.inline.append("script text")


def _files_of_page(client: httpx.Client) -> dict[str, httpx.Response]:
    """Every file the page loads, following the scripts' imports."""
    page = _Page()
    page.feed(client.get("/").text)
    assert page.inline == []
    todo, seen = list(page.urls), {}
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        answer = client.get(url)
        seen[url] = answer
        if url.endswith((".js", ".mjs")):
            folder = url.rpartition("/")[0]
            for name in re.findall(r'(?:from|import)\s*"\./([^"]+)"', answer.text):
                todo.append(f"{folder}/{name}")
    return seen


def test_the_page_and_every_file_it_loads_are_served_with_the_policy(
    server: ThreadServer,
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        files = _files_of_page(client)
    assert {
        "/static/app.css",
        "/static/app.js",
        "/static/api.js",
        "/static/render.js",
        "/static/favicon.svg",
        "/static/vendor/markdown-it.esm.min.mjs",
        "/static/vendor/purify.es.mjs",
        "/static/vendor/eventsource-parser.js",
    } <= set(files)
    for url, answer in [("/", page), *files.items()]:
        assert answer.status_code == 200, url
        policy = answer.headers["content-security-policy"]
        directives = dict(item.strip().partition(" ")[::2] for item in policy.split(";"))
        assert directives["default-src"] == "'none'"
        for kind in ("script-src", "style-src", "img-src", "connect-src"):
            assert directives[kind] == "'self'", (url, kind)  # no inline code, nothing remote
        assert directives["frame-ancestors"] == "'none'"
        assert directives["form-action"] == "'none'"
        assert directives["require-trusted-types-for"] == "'script'"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
    assert files["/static/app.js"].headers["content-type"] == "text/javascript; charset=utf-8"
    assert (
        files["/static/vendor/purify.es.mjs"].headers["content-type"].startswith("text/javascript")
    )
    assert files["/static/app.css"].headers["content-type"] == "text/css; charset=utf-8"


def test_an_unchanged_file_answers_304(server: ThreadServer) -> None:
    first = httpx.get(f"{server.url}/static/app.js")
    tag = first.headers["etag"]
    again = httpx.get(f"{server.url}/static/app.js", headers={"If-None-Match": tag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", tag)
    other = httpx.get(f"{server.url}/static/app.js", headers={"If-None-Match": '"other"'})
    assert other.status_code == 200
    assert other.content == first.content


@pytest.mark.parametrize(
    "path",
    [
        "/static/nothing.js",
        "/static/../_app.py",
        "/static/%2e%2e/_app.py",
        "/static/..%2f_app.py",
        "/static/vendor/../../_app.py",
        "/static//etc/passwd",
        "/static/vendor/README.md",  # shipped, but not a file of the page
        "/static/",
        "/index.html",
    ],
)
def test_only_the_pages_files_are_served(server: ThreadServer, path: str) -> None:
    answer = httpx.get(server.url + path)
    assert_error_shape(answer, 404, "not_found")
    assert "content-security-policy" not in answer.headers


def test_the_page_answers_get_only(server: ThreadServer) -> None:
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        answer = httpx.request(method, server.url + "/")
        assert_error_shape(answer, 405, "method_not_allowed")
        assert answer.headers["allow"] == "GET"


def test_the_page_is_refused_for_a_foreign_host_name(server: ThreadServer) -> None:
    # DNS rebinding: another site's name resolving to 127.0.0.1 gets no page (nor API)
    answer = httpx.get(server.url + "/", headers={"Host": "attacker.example"})
    assert_error_shape(answer, 400, "host_not_allowed")


def test_config_lists_the_default_and_the_allowed_models(server: ThreadServer) -> None:
    answer = httpx.get(f"{server.url}/v1/config")
    assert answer.status_code == 200
    assert answer.json() == {"model": MODEL, "allowed_models": [MODEL]}


@pytest.fixture(scope="module")
def keyed(
    upstream: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadServer]:
    settings = make_settings(
        upstream.url,
        tmp_path_factory.mktemp("page-keys"),
        api_keys=[KEY],
        allowed_models=[MODEL, "openai/*", "anthropic/claude-?-*"],
    )
    running = ThreadServer(settings).start()
    yield running
    running.stop()


def test_with_keys_the_page_is_public_and_config_needs_a_key(keyed: ThreadServer) -> None:
    assert httpx.get(keyed.url + "/").status_code == 200  # the page holds no data
    assert httpx.get(keyed.url + "/static/app.js").status_code == 200
    refused = httpx.get(f"{keyed.url}/v1/config")
    assert_error_shape(refused, 401, "unauthorized")
    wrong = httpx.get(f"{keyed.url}/v1/config", headers={"Authorization": "Bearer " + "x" * 20})
    assert_error_shape(wrong, 401, "unauthorized")
    answer = httpx.get(f"{keyed.url}/v1/config", headers={"Authorization": f"Bearer {KEY}"})
    assert answer.json() == {
        "model": MODEL,
        "allowed_models": [MODEL, "openai/*", "anthropic/claude-?-*"],
    }
