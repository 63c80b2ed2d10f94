"""OpenAI clients use chat-shell's agent by changing only their base URL: the official ``openai``
SDK and litellm against a real ``chat-shell serve`` process (with an API key), the scripted
model server as its upstream. The tools run on the server."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chat_shell.testing import Reply, ScriptedModelServer, default_responder
from serve_support import MODEL, Serve, script_env, user, write_home

openai = pytest.importorskip("openai")
pytest.importorskip("chat_shell_cli")
pytest.importorskip("chat_shell_http")

from openai.types.chat import ChatCompletion, ChatCompletionChunk  # noqa: E402

KEY = "openai-clients-key-0123456789"
SECRET = "sk-upstream-secret-0123456789"


def responder(request: dict[str, Any]) -> Reply:
    """The default responder plus ``slow N`` (N tokens, 5 ms apart), ``fail STATUS`` and
    ``midfail`` (three tokens, then an error in the stream)."""
    last = (request.get("messages") or [{}])[-1]
    content = str(last.get("content") or "").strip() if last.get("role") == "user" else ""
    if match := re.fullmatch(r"slow (\d+)", content):
        return Reply.tokens(int(match.group(1)), delay=0.005)
    if match := re.fullmatch(r"fail (\d+)", content):
        return Reply.error(int(match.group(1)), f"provider detail {SECRET}")
    if content == "midfail":
        return Reply.tokens(3, stream_error=f"provider detail {SECRET}")
    return default_responder(request)


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(responder=responder) as server:
        yield server


@pytest.fixture(scope="module")
def base_url(
    upstream: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``chat-shell serve --api-key KEY`` on a free port: its OpenAI base URL."""
    tables = "[server]\nrate_limit_per_minute = 0\n"
    home = write_home(
        tmp_path_factory.mktemp("home"), upstream.url, tables=tables, api_key="sk-test-upstream"
    )
    server = Serve(script_env(home), "--api-key", KEY)
    yield f"{server.url}/v1"
    # The provider's own words are for the operator's log (never for clients, asserted in
    # the tests); the server's upstream key is in neither.
    assert "sk-test-upstream" not in server.stop()


@pytest.fixture
def client(base_url: str) -> Iterator[Any]:
    with openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=30) as sdk:
        yield sdk


@pytest.fixture
def native(base_url: str) -> Iterator[httpx.Client]:
    """chat-shell's own API on the same server, to look at runs and sessions."""
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=base_url.removesuffix("/v1"), headers=headers, timeout=30) as http:
        yield http


def strict(item: Any) -> Any:
    """``item`` validated as its SDK type (the SDK itself builds objects without checking)."""
    return type(item).model_validate(item.to_dict())


def run_status(native: httpx.Client, run_id: str) -> dict[str, Any]:
    for _ in range(500):
        run: dict[str, Any] = native.get(f"/v1/response/{run_id}").json()
        if run["status"] not in ("queued", "running"):
            return run
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} still running")


def test_models_and_a_non_streamed_answer(client: Any) -> None:
    assert [model.id for model in client.models.list()] == [MODEL]
    answer = client.chat.completions.create(model=MODEL, messages=user("hello"))
    assert isinstance(strict(answer), ChatCompletion)
    assert answer.choices[0].message.content == "echo: hello"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    assert answer.model == MODEL
    assert answer.model_extra["chat_shell"]["status"] == "completed"


def test_a_streamed_tool_run_on_the_server(client: Any, upstream: ScriptedModelServer) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=user('call calculator {"expression": "6*7"}'),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [strict(chunk) for chunk in stream]
    assert all(isinstance(chunk, ChatCompletionChunk) for chunk in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "result: 42"
    events = [c.model_extra["chat_shell"] for c in chunks if "chat_shell" in (c.model_extra or {})]
    assert [e["event_type"] for e in events] == ["tool_call", "tool_result"]
    assert events[1]["data"]["result"] == "42"
    assert not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert set(finishes[:-1]) == {None}
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens > 0
    assert upstream.requests[-1]["messages"][-1] == {
        "role": "tool",
        "content": "42",
        "tool_call_id": events[0]["data"]["id"],
        "name": "calculator",
    }


def test_a_session_through_the_sdk(client: Any, native: httpx.Client) -> None:
    session = {"X-Session-Id": "sdk-session"}
    first = client.chat.completions.create(model=MODEL, messages=user("one"), extra_headers=session)
    assert first.choices[0].message.content == "echo: one"
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[*user("one"), {"role": "assistant", "content": "echo: one"}, *user("two")],
        stream=True,
        metadata={"session_id": "sdk-session"},
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: two"
    history = native.get("/v1/sessions/sdk-session/history").json()["messages"]
    assert [m["content"] for m in history] == ["one", "echo: one", "two", "echo: two"]


def test_model_errors(client: Any) -> None:
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(model=MODEL, messages=user("fail 500"))
    assert failed.value.status_code == 503
    assert failed.value.body["type"] == "server_error"
    assert SECRET not in str(failed.value.body)
    # A stream that fails before its first token answers the same status.
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=MODEL, messages=user("fail 503"), stream=True)
    # After the first token, the error comes in the stream: the SDK raises it there.
    stream = client.chat.completions.create(model=MODEL, messages=user("midfail"), stream=True)
    received: list[str] = []

    def read() -> None:
        received.extend(chunk.choices[0].delta.content or "" for chunk in stream)

    with pytest.raises(openai.APIError) as mid:
        read()
    assert "".join(received) == "t0 t1 t2 "
    assert mid.value.body["type"] == "server_error"
    assert SECRET not in str(mid.value.body)


def test_an_unknown_model(client: Any) -> None:
    with pytest.raises(openai.NotFoundError) as refused:
        client.chat.completions.create(model="openai/not-offered", messages=user("hi"))
    assert refused.value.code == "model_not_found"
    assert "openai/scripted" in refused.value.message  # what is offered


def test_a_bad_key(base_url: str) -> None:
    with openai.OpenAI(base_url=base_url, api_key="not-the-key-0123456789", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        with pytest.raises(openai.AuthenticationError) as refused:
            bad.chat.completions.create(model=MODEL, messages=user("hi"), stream=True)
    assert refused.value.body["type"] == "authentication_error"


def test_a_client_that_disconnects_mid_stream_cancels_its_run(
    client: Any, native: httpx.Client
) -> None:
    stream = client.chat.completions.create(model=MODEL, messages=user("slow 2000"), stream=True)
    seen = []
    for chunk in stream:
        seen.append(chunk)
        if len(seen) == 4:
            break
    stream.close()
    run = run_status(native, seen[0].id)
    assert run["status"] == "cancelled"
    assert run["content"].startswith("t0 t1 t2 ")
    assert len(run["content"]) < len("t0 ") * 2000


def test_the_documented_sdk_example(base_url: str) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "http.md").read_text()
    code = next(
        block
        for block in re.findall(r"```python\n(.*?)```", text, re.DOTALL)
        if "def ask(" in block
    )
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/http.md", "exec"), namespace)
    assert namespace["ask"](base_url, KEY, 'call calculator {"expression": "2**10"}') == (
        "result: 1024"
    )


@pytest.mark.slow
@pytest.mark.litellm
async def test_litellm_as_a_client(base_url: str) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm
    from litellm.exceptions import NotFoundError

    options = {"model": f"openai/{MODEL}", "api_base": base_url, "api_key": KEY}
    answer = await litellm.acompletion(messages=user("hello"), **options)
    assert answer.choices[0].message.content == "echo: hello"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.total_tokens > 0

    stream = await litellm.acompletion(
        messages=user('call calculator {"expression": "6*7"}'), stream=True, **options
    )
    parts = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    assert "".join(parts) == "result: 42"

    with pytest.raises(NotFoundError):
        await litellm.acompletion(
            messages=user("hi"), **{**options, "model": "openai/openai/not-offered"}
        )
