"""Model failures over HTTP: clients get the class and ``retryable`` (never the provider's text),
the server log gets run id, model, status and cause (never a key); cut-off answers say so."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chat_shell import load_settings
from chat_shell._models.litellm_backend import import_litellm
from chat_shell.testing import Recording, Reply, ScriptedModelServer
from http_support import ProcessServer, ThreadServer, sse_frames, user

KEY = "sk-test-upstream-key-0123456789"
SECRET = "upstream secret detail"
LITELLM_MODEL = "hosted_vllm/scripted"  # litellm's OpenAI-compatible provider


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def respond(request: dict[str, Any]) -> Reply | Recording:
    text = str(request["messages"][-1].get("content") or "")
    if match := re.fullmatch(r"fail (\d+)", text):
        return Reply.error(int(match.group(1)), f"{SECRET} (key {KEY[:12]}…)")
    if text == "overflow":
        return Reply.error(400, f"This model's maximum context length is 8192 tokens. {SECRET}")
    if text == "limited":
        body = b'{"error": {"message": "upstream secret detail", "type": "rate_limit_error"}}'
        headers = {"Content-Type": "application/json", "Retry-After": "7"}
        return Recording(body, status=429, headers=headers)
    if text == "empty":
        return Recording.sse(chunk({"role": "assistant", "content": ""}), chunk({}, "stop"))
    if text == "cut":
        return Recording.sse(
            chunk({"role": "assistant", "content": "Once upon"}), chunk({}, "length")
        )
    return Reply.text("fine")


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(responder=respond) as server:
        yield server


@pytest.fixture(scope="module")
def server(
    upstream: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadServer]:
    home = tmp_path_factory.mktemp("server")
    endpoint = {"api_base": upstream.url, "api_key": KEY}
    settings = load_settings(
        home,
        environ={},
        read_file=False,
        model="openai/scripted",
        models={"openai/scripted": endpoint, LITELLM_MODEL: endpoint},
        retries=0,
        storage="sqlite",
        storage_path=str(home / "history.db"),
        server={"rate_limit_per_minute": 0},
    )
    running = ThreadServer(settings).start()
    yield running
    running.stop()


async def run(
    server: ThreadServer, text: str, model: str | None = None
) -> tuple[list[Any], dict[str, Any]]:
    """The run's SSE frames, and its status body once it ended."""
    body: dict[str, Any] = {"messages": user(text)}
    if model:
        body["model"] = model
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        async with client.stream("POST", "/v1/response", json=body) as response:
            assert response.status_code == 200
            frames = [frame async for frame in sse_frames(response)]
        status = (await client.get(f"/v1/response/{response.headers['x-subtask-id']}")).json()
    return frames, status


@pytest.mark.parametrize(
    ("text", "code", "retryable", "words"),
    [
        ("fail 401", "authentication", False, "refused the credentials (HTTP 401)"),
        ("fail 403", "authentication", False, "refused the credentials (HTTP 403)"),
        ("fail 429", "rate_limited", True, "rate-limiting requests (HTTP 429) (retryable)"),
        ("fail 503", "unavailable", True, "unavailable or cannot be reached (HTTP 503)"),
        ("fail 500", "unavailable", True, "(HTTP 500) (retryable)"),
        ("fail 400", "bad_request", False, "refused the request (HTTP 400)"),
        ("fail 404", "model_not_found", False, "does not know this model"),
        ("overflow", "context_length_exceeded", False, "too long for the model's context window"),
        ("empty", "no_output", False, "the model returned no output"),
    ],
)
async def test_clients_get_the_class_of_a_model_failure(
    server: ThreadServer,
    caplog: pytest.LogCaptureFixture,
    text: str,
    code: str,
    retryable: bool,
    words: str,
) -> None:
    with caplog.at_level(logging.WARNING, logger="chat_shell"):
        frames, status = await run(server, text)
    errors = [f.data["data"] for f in frames if f.event == "error"]
    assert len(errors) == 1
    error = errors[0]
    assert (error["code"], error["retryable"], error["model"]) == (
        code,
        retryable,
        "openai/scripted",
    )
    assert error["message"].startswith("openai/scripted: ")
    assert words in error["message"]
    assert SECRET not in str(frames)
    assert status["status"] == "failed"
    assert status["error"] == error  # the status body says the same
    # the operator's log has the run, the model, the class, the status and the provider's text
    lines = [r.getMessage() for r in caplog.records if status["subtask_id"] in r.getMessage()]
    assert len(lines) == 1
    assert f"model openai/scripted failed before answering ({code}" in lines[0]
    assert SECRET in lines[0] or code == "no_output"
    assert KEY not in caplog.text


@pytest.mark.litellm
async def test_retry_after_reaches_the_client(server: ThreadServer) -> None:
    import_litellm()  # once, here: importing it may take long on a busy machine
    frames, status = await run(server, "limited", model=LITELLM_MODEL)
    error = status["error"]
    assert (error["code"], error["retryable"], error["retry_after"]) == ("rate_limited", True, 7)
    assert error["message"] == (
        f"{LITELLM_MODEL}: the model provider is rate-limiting requests (HTTP 429); retry after 7 s"
    )
    assert [f.data["data"] for f in frames if f.event == "error"] == [error]


async def test_an_answer_cut_off_says_so(server: ThreadServer) -> None:
    frames, status = await run(server, "cut")
    complete = frames[-1].data["data"]
    assert (complete["status"], complete["finish_reason"]) == ("incomplete", "length")
    assert "cut off" in complete["reason"]
    assert status["status"] == "incomplete"
    assert status["finish_reason"] == "length"
    assert status["reason"] == complete["reason"]
    assert status["content"] == "Once upon"
    assert status["error"] is None


async def test_a_completed_run_gives_its_finish_reason(server: ThreadServer) -> None:
    _, status = await run(server, "hello")
    assert (status["status"], status["finish_reason"], status["reason"]) == (
        "completed",
        "stop",
        None,
    )


def test_status_codes_are_documented() -> None:
    """Every model error code is in docs/http.md's error section."""
    from chat_shell import MODEL_ERROR_CODES

    docs = (Path(__file__).parents[2] / "docs" / "http.md").read_text()
    section = docs[docs.index("## Errors") :]
    for code in MODEL_ERROR_CODES:
        assert f"`{code}`" in section, code


def test_the_served_process_logs_model_failures_on_stderr(
    upstream: ScriptedModelServer, tmp_path: Path
) -> None:
    """``python -m chat_shell_http`` as a user runs it: the failure's line is in its log."""
    (tmp_path / "config.toml").write_text(
        f'model = "openai/scripted"\nretries = 0\n'
        f'[models."openai/scripted"]\napi_base = "{upstream.url}"\napi_key = "{KEY}"\n'
    )
    served = ProcessServer(tmp_path).wait_ready(timeout=60)
    try:
        body = {"messages": user("fail 401"), "stream": False}
        answer = httpx.post(f"{served.url}/v1/response", json=body, timeout=60).json()
    finally:
        log = served.stop()
    assert answer["error"]["code"] == "authentication"
    lines = [line for line in log.splitlines() if answer["subtask_id"] in line]
    assert len(lines) == 1, log
    assert "model openai/scripted failed before answering (authentication, HTTP 401)" in lines[0]
    assert SECRET in lines[0]
    assert KEY not in log
