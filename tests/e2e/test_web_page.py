"""The chat page of `chat-shell serve`, in a real headless Chromium (Debian's, driven by
Playwright): a conversation with thinking, Markdown and a tool call, the model picker, stop and
reload mid-stream, a dropped connection, an injection payload from the model, a server with keys.

Screenshots of each state go to ``$CHAT_SHELL_SCREENSHOTS`` (default: ``screenshots/`` in pytest's
temporary folder).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from chat_shell.testing import ScriptedModelServer
from serve_support import Serve
from web_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PAYLOAD,
    DroppingProxy,
    require_chromium,
    responder,
    web_serve,
)

pytest.importorskip("chat_shell_http")
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
expect.set_options(timeout=20_000)

KEY = "web-page-key-0123456789abcdef"

Shot = Callable[[Any, str], Path]


@dataclass
class Tab:
    """A page in a fresh browser context, with what it logged and requested."""

    page: Any
    problems: list[str] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)

    def open(self, url: str) -> None:
        self.page.goto(url)
        self.page.wait_for_selector("body[data-ready]")

    def ask(self, text: str) -> Any:
        """Send ``text``; the answer's element, once the run is over."""
        answers = self.page.locator(".message.assistant")
        before = answers.count()
        self.page.fill("#input", text)
        self.page.click("#send")
        turn = answers.nth(before)
        expect(turn).to_have_attribute("data-status", re.compile(r"."))
        return turn

    def resumes(self) -> list[str]:
        """The Last-Event-ID of every request that re-attached to a run."""
        return [
            request.all_headers().get("last-event-id", "")
            for request in self.requests
            if request.method == "GET" and "/v1/response/run_" in request.url
        ]


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(responder=responder) as server:
        yield server


@pytest.fixture(scope="module")
def serve(
    upstream: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Serve]:
    server = web_serve(tmp_path_factory.mktemp("serve"), upstream.url)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1100, "height": 720})
    page = context.new_page()
    opened = Tab(page)

    def console(message: Any) -> None:
        if message.type == "error":
            opened.problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: opened.problems.append(str(error)))
    page.on("request", lambda request: opened.requests.append(request))
    yield opened
    context.close()
    # a script error or a refused load (the Content-Security-Policy reports each one) is a bug
    assert opened.problems == []


@pytest.fixture
def shot(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Shot:
    folder = Path(
        os.environ.get("CHAT_SHELL_SCREENSHOTS") or tmp_path_factory.getbasetemp() / "screenshots"
    )
    folder.mkdir(parents=True, exist_ok=True)
    name = request.node.name.removeprefix("test_")

    def take(page: Any, state: str) -> Path:
        path = folder / f"{name}-{state}.png"
        page.screenshot(path=str(path))
        return path

    return take


def tokens(count: int) -> list[str]:
    return [f"t{i}" for i in range(count)]


def words(turn: Any) -> list[str]:
    return str(turn.locator(".markdown").inner_text()).split()


def test_a_conversation_with_thinking_markdown_and_a_tool_call(
    serve: Serve, tab: Tab, shot: Shot
) -> None:
    page = tab.page
    tab.open(serve.url)
    expect(page.locator("#messages")).to_be_empty()
    shot(page, "1-empty")

    turn = tab.ask("think")
    expect(turn).to_have_attribute("data-status", "completed")
    thinking = turn.locator("details.thinking")
    assert thinking.get_attribute("open") is None  # collapsed
    expect(thinking.locator(".text")).to_be_hidden()
    expect(thinking.locator(".text")).to_have_text("The user wants a sample of Markdown.")
    answer = turn.locator(".markdown")
    expect(answer.locator("h2")).to_have_text("A sample")
    expect(answer.locator("strong")).to_have_text("bold")
    expect(answer.locator("em")).to_have_text("emphasis")
    expect(answer.locator("pre code")).to_have_text("print(6 * 7)\n")
    expect(answer.locator("li")).to_have_text(["one", "two"])
    link = answer.locator("a")
    expect(link).to_have_attribute("href", "https://example.com/docs")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(link).to_have_attribute("target", "_blank")
    shot(page, "2-markdown")
    thinking.locator("summary").click()
    expect(thinking.locator(".text")).to_be_visible()

    turn = tab.ask('call calculator {"expression": "6*7"}')
    expect(turn).to_have_attribute("data-status", "completed")
    tool = turn.locator("details.tool")
    expect(tool.locator(".tool-name")).to_have_text("calculator")
    expect(tool.locator(".tool-brief")).to_contain_text("→ 42")
    tool.locator("summary").click()
    expect(tool.locator(".arguments")).to_have_text('{\n  "expression": "6*7"\n}')
    expect(tool.locator(".result")).to_have_text("42")
    expect(turn.locator(".markdown")).to_have_text("result: 42")
    shot(page, "3-tool-call")

    # The session is listed (titled by its first message) and its history shows the same.
    listed = page.locator("#sessions li", has_text="think")
    expect(listed).to_have_class("current")
    expect(listed).to_contain_text("6 messages")
    page.click("#new-chat")
    expect(page.locator("#messages")).to_be_empty()
    expect(page.locator("#title")).to_have_text("New chat")
    listed.locator("button").click()
    expect(page.locator("#title")).to_have_text("think")
    expect(page.locator(".message")).to_have_count(4)
    first, second = page.locator(".message.assistant").all()
    expect(first.locator("details.thinking .text")).to_have_text(
        "The user wants a sample of Markdown."
    )
    expect(first.locator(".markdown h2")).to_have_text("A sample")
    expect(second.locator(".tool-name")).to_have_text("calculator")
    expect(second.locator(".result")).to_have_text("42")
    expect(second.locator(".markdown")).to_have_text("result: 42")
    second.locator("details.tool summary").click()
    shot(page, "4-history")


def test_the_model_picker_offers_the_servers_models(
    serve: Serve, upstream: ScriptedModelServer, tab: Tab
) -> None:
    page = tab.page
    tab.open(serve.url)
    expect(page.locator("#model option")).to_have_text(
        ["openai/scripted (default)", "openai/second"]
    )
    page.select_option("#model", "openai/second")
    turn = tab.ask("which model?")
    expect(turn.locator("footer")).to_contain_text("openai/second")
    assert upstream.requests[-1]["model"] == "second"
    page.select_option("#model", "")
    turn = tab.ask("and now?")
    expect(turn.locator("footer")).to_contain_text("openai/scripted")
    assert upstream.requests[-1]["model"] == "scripted"


def test_stop_mid_stream(serve: Serve, tab: Tab, shot: Shot) -> None:
    page = tab.page
    tab.open(serve.url)
    page.fill("#input", "slow 400 25")
    page.click("#send")
    turn = page.locator(".message.assistant").last
    expect(turn.locator(".markdown")).to_contain_text("t5 ")
    expect(page.locator("#send")).to_be_hidden()
    expect(page.locator("#stop")).to_be_enabled()
    shot(page, "1-streaming")
    page.click("#stop")
    expect(turn).to_have_attribute("data-status", "cancelled")
    expect(turn.locator(".badge")).to_have_text("stopped")
    shown = words(turn)
    assert 5 < len(shown) < 400
    assert shown == tokens(len(shown))
    page.wait_for_timeout(300)
    assert words(turn) == shown  # nothing came after the stop
    assert any(r.method == "DELETE" and "/v1/response/run_" in r.url for r in tab.requests)
    expect(page.locator("#send")).to_be_visible()
    expect(page.locator("#stop")).to_be_hidden()
    shot(page, "2-stopped")
    session = page.locator("#sessions li.current").get_attribute("data-session")
    history = httpx.get(f"{serve.url}/v1/sessions/{session}/history").json()["messages"]
    assert history[-1]["metadata"]["status"] == "cancelled"


def test_a_reload_mid_stream_reattaches_without_duplicates(
    serve: Serve, tab: Tab, shot: Shot
) -> None:
    page = tab.page
    tab.open(serve.url)
    page.fill("#input", "slow 80 40")
    page.click("#send")
    expect(page.locator(".message.assistant .markdown")).to_contain_text("t10 ")
    shot(page, "1-before")
    page.reload()
    page.wait_for_selector("body[data-ready]")
    turn = page.locator(".message.assistant").last
    expect(turn).to_have_attribute("data-status", "completed")
    expect(page.locator(".message.user")).to_have_text(["slow 80 40"])
    expect(page.locator(".message.assistant")).to_have_count(1)
    assert words(turn) == tokens(80)
    resumed = tab.resumes()
    assert resumed, "the page did not re-attach to the run"
    assert int(resumed[0]) >= 10, resumed  # after what it had shown, not from the start
    shot(page, "2-after")


def test_a_dropped_connection_reattaches_without_duplicates(
    serve: Serve, tab: Tab, shot: Shot
) -> None:
    proxy = DroppingProxy(serve.port)
    try:
        page = tab.page
        tab.open(proxy.url)
        page.fill("#input", "slow 80 40")
        page.click("#send")
        turn = page.locator(".message.assistant").last
        expect(turn.locator(".markdown")).to_contain_text("t10 ")
        assert proxy.drop() >= 2  # the stream's connection, both sides
        expect(turn).to_have_attribute("data-status", "completed")
        assert words(turn) == tokens(80)
        cut = [p for p in tab.problems if "net::ERR_INCOMPLETE_CHUNKED_ENCODING" in p]
        assert cut, tab.problems  # the browser saw the stream break
        tab.problems = [p for p in tab.problems if p not in cut]
        resumed = tab.resumes()
        assert resumed, "the page did not re-attach to the run"
        assert int(resumed[0]) >= 10, resumed
        shot(page, "1-after")
    finally:
        proxy.close()


INERT = """() => {
  const messages = document.querySelector("#messages");
  const active = "script,img,svg,iframe,frame,object,embed,style,link,meta,base,form,input," +
    "video,audio,source,picture,math";
  return {
    pwned: window.__pwned ?? null,
    elements: [...messages.querySelectorAll(active)].map((e) => e.tagName),
    handlers: [...document.querySelectorAll("*")].flatMap((e) =>
      [...e.attributes]
        .filter((a) => a.name.startsWith("on") || /^\\s*(javascript|data|vbscript):/i.test(a.value))
        .map((a) => `${e.tagName} ${a.name}`)),
    links: [...messages.querySelectorAll("a")].map((a) => a.getAttribute("href")),
  };
}"""


def assert_inert(tab: Tab, url: str) -> None:
    found = tab.page.evaluate(INERT)
    assert found["pwned"] is None
    assert found["elements"] == []
    assert found["handlers"] == []
    assert all(link.startswith(("http://", "https://")) for link in found["links"]), found
    # nothing was loaded from anywhere but the server (the "image" URL included)
    assert all(r.url.startswith(url) for r in tab.requests), [r.url for r in tab.requests]


def test_an_injection_payload_from_the_model_stays_text(serve: Serve, tab: Tab, shot: Shot) -> None:
    page = tab.page
    tab.open(serve.url)
    echoed = tab.ask(PAYLOAD)  # the user's text, and the model's echo of it
    injected = tab.ask("inject")  # as reasoning and as the answer
    expression = "<img src=x onerror=\"window.__pwned='tool'\"><script>window.__pwned=1</script>"
    tooled = tab.ask("call calculator " + json.dumps({"expression": expression}))
    for turn in (echoed, injected):
        expect(turn.locator(".markdown")).to_contain_text(
            "<script>window.__pwned = 'script'</script>"
        )
        expect(turn.locator(".markdown")).to_contain_text("<img src=x onerror=")
    expect(injected.locator("details.thinking .text")).to_contain_text("<svg onload=")
    expect(page.locator(".message.user").first).to_contain_text("<iframe srcdoc=")
    expect(tooled.locator(".arguments")).to_contain_text("<img src=x onerror=")
    expect(tooled.locator(".result")).not_to_be_empty()
    injected.locator("details.thinking summary").click()
    assert_inert(tab, serve.url)
    shot(page, "1-live")

    page.reload()  # the same, rendered from the stored history
    page.wait_for_selector("body[data-ready]")
    expect(page.locator(".message")).to_have_count(6)
    expect(page.locator(".message.assistant").nth(1).locator(".markdown")).to_contain_text(
        "<script>window.__pwned = 'script'</script>"
    )
    page.wait_for_timeout(200)  # time for a handler to fire, if one had been created
    assert_inert(tab, serve.url)
    shot(page, "2-history")


@pytest.fixture(scope="module")
def keyed(
    upstream: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Serve]:
    server = web_serve(tmp_path_factory.mktemp("keyed"), upstream.url, CHAT_SHELL_API_KEYS=KEY)
    yield server
    server.stop()


def test_a_server_with_keys_asks_for_one_and_keeps_it_out_of_urls_and_logs(
    keyed: Serve, browser: Any, tab: Tab, shot: Shot
) -> None:
    page = tab.page
    wrong = "wrong-key-0123456789abcdef"
    page.goto(keyed.url)
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    shot(page, "1-asks")
    page.fill("#key-input", wrong)
    page.click("#key-submit")
    expect(page.locator("#key-error")).to_have_text("The server does not accept this key.")
    shot(page, "2-refused")
    page.fill("#key-input", KEY)
    page.click("#key-submit")
    expect(dialog).to_be_hidden()
    page.wait_for_selector("body[data-ready]")
    turn = tab.ask("hello")
    expect(turn.locator(".markdown")).to_have_text("echo: hello")
    shot(page, "3-chatting")

    # A header only: in no URL, no log line, no cookie, nothing kept beyond this tab.
    sent = [r for r in tab.requests if r.method == "POST" and r.url.endswith("/v1/response")]
    assert [r.all_headers().get("authorization") for r in sent] == [f"Bearer {KEY}"]
    assert all(KEY not in r.url and wrong not in r.url for r in tab.requests)
    assert KEY not in page.url
    assert page.evaluate("localStorage.length") == 0
    assert page.evaluate("document.cookie") == ""
    page.reload()  # the same tab keeps it
    page.wait_for_selector("body[data-ready]")
    expect(dialog).to_be_hidden()
    expect(page.locator(".message.assistant .markdown")).to_have_text(["echo: hello"])
    other = browser.new_context()  # another tab's storage does not have it
    try:
        fresh = other.new_page()
        fresh.goto(keyed.url)
        expect(fresh.locator("#key-dialog")).to_be_visible()
    finally:
        other.close()
    page.click("#forget-key")
    expect(dialog).to_be_visible()
    log = keyed.log()
    assert '"GET /v1/config HTTP/1.1" 401' in log  # the access log is on …
    assert '"POST /v1/response HTTP/1.1" 200' in log
    assert KEY not in log  # … and has neither key
    assert wrong not in log
    # the browser reports each 401 (the page's question for a key) as a failed load
    tab.problems = [p for p in tab.problems if "status of 401 (Unauthorized)" not in p]


def test_a_missing_chromium_fails_in_ci_and_skips_elsewhere(tmp_path: Path) -> None:
    missing = tmp_path / "chromium"
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        require_chromium(missing, {"CI": "true"})
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        require_chromium(missing, {})
    require_chromium(Path(sys.executable), {"CI": "true"})  # present: nothing to say
