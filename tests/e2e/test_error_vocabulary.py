"""One error vocabulary: every class of the error tree shows the same ``code`` in a run's
``error`` event (a real SSE stream), in an HTTP error body (a real ``chat-shell serve``) and in
the CLI (the real console script: its exit code, its one line, its ``--json`` output).

A storage plugin (a distribution on PYTHONPATH, found through ``chat_shell.storage``) raises
the class a session id names: ``get_session.<code>`` from ``get_session`` (an error a route
meets), ``get_history.<code>`` from ``get_history`` (an error inside a run), and the class
``FAIL_LIST_SESSIONS`` names from ``list_sessions`` (an error a command meets).
A class added to the tree is covered here as soon as it exists.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from chat_shell import (
    ChatShellError,
    ModelError,
    NotFoundError,
    SessionBusyError,
    StorageError,
    ToolError,
    UserError,
)
from chat_shell.testing import ScriptedModelServer
from serve_support import Serve, run_cli, script_env, write_home

pytest.importorskip("chat_shell_cli")
pytest.importorskip("chat_shell_http")

PLUGIN = """
import os

from chat_shell import ChatShellError, MemoryStorage, SessionBusyError


def make(code, message):
    error_class = ChatShellError.for_code(code)
    if error_class is SessionBusyError:  # it names the session and its run
        return SessionBusyError("s1", "run_scripted", message)
    return error_class(message)


def _raise(method, session_id):
    where, _, code = session_id.partition(".")
    if where == method:
        raise make(code, f"scripted {code} from {method}")


class FailingHistory(type(MemoryStorage().history)):  # memory history, whatever its methods
    async def get_session(self, session_id):
        _raise("get_session", session_id)
        return await super().get_session(session_id)

    async def list_sessions(self, **options):
        code = os.environ.get("FAIL_LIST_SESSIONS")
        if code:
            raise make(code, f"scripted {code} from list_sessions")
        return await super().list_sessions(**options)

    async def get_history(self, session_id, limit=None):
        _raise("get_history", session_id)
        return await super().get_history(session_id, limit)


class FailingStorage(MemoryStorage):
    def __init__(self, **options):
        super().__init__()
        self._history = FailingHistory()
"""


def error_classes() -> list[type[ChatShellError]]:
    """Every class of the tree with a code of its own (its subclasses found as they are)."""
    found: list[type[ChatShellError]] = [ChatShellError]
    for error_class in found:
        found += error_class.__subclasses__()
    return [cls for cls in found if ChatShellError.for_code(cls.code) is cls]


# What each edge answers, by class; a class not named answers as its nearest parent.
HTTP_STATUS = {
    SessionBusyError: 409,
    NotFoundError: 404,
    StorageError: 503,
    UserError: 400,
    ModelError: 502,
    ToolError: 500,
    ChatShellError: 500,
}
EXIT_CODE = {SessionBusyError: 2, NotFoundError: 2, UserError: 2, ChatShellError: 1}


def nearest(table: dict[type[ChatShellError], int], error_class: type[ChatShellError]) -> int:
    return next(table[cls] for cls in error_class.__mro__ if cls in table)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("vocabulary")
    plugin = root / "plugin"
    info = plugin / "failing_storage-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: failing-storage\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[chat_shell.storage]\nfailing = failing_storage:FailingStorage\n"
    )
    (plugin / "failing_storage.py").write_text(textwrap.dedent(PLUGIN))
    with ScriptedModelServer() as upstream:
        home = write_home(root / "home", upstream.url, settings='storage = "failing"\n')
        yield script_env(home, PYTHONPATH=str(plugin))


@pytest.fixture(scope="module")
def server(env: dict[str, str]) -> Iterator[str]:
    with Serve(env) as serve:
        yield serve.url


def stream_errors(url: str, session_id: str) -> list[dict[str, Any]]:
    """The ``error`` events of a streamed run, read from the SSE frames."""
    body = {
        "session_id": session_id,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    errors = []
    with httpx.stream("POST", f"{url}/v1/response", json=body, timeout=30) as response:
        assert response.status_code == 200, response.read()
        event = ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:") and event == "error":
                errors.append(json.loads(line.removeprefix("data:"))["data"])
    return errors


def test_the_tree_is_what_the_docs_say() -> None:
    codes = {cls.__name__: cls.code for cls in error_classes()}
    assert {
        "ChatShellError": "internal_error",
        "UserError": "user_error",
        "ModelError": "model_error",
        "ToolError": "tool_error",
        "StorageError": "storage_error",
        "NotFoundError": "not_found",
    }.items() <= codes.items()
    assert len(set(codes.values())) == len(codes)


def test_a_new_code_is_a_new_class_and_a_code_cannot_be_taken_twice() -> None:
    with pytest.raises(TypeError, match="error code 'user_error' is already UserError's"):

        class Again(ChatShellError):
            code = "user_error"

    class Quiet(UserError):
        """No code of its own: a UserError on the wire."""

    assert Quiet.code == "user_error"
    assert ChatShellError.for_code("user_error") is UserError


@pytest.mark.parametrize("error_class", error_classes(), ids=lambda cls: cls.__name__)
def test_one_code_in_events_bodies_and_the_cli(
    error_class: type[ChatShellError], env: dict[str, str], server: str
) -> None:
    code = error_class.code
    status = nearest(HTTP_STATUS, error_class)
    exit_code = nearest(EXIT_CODE, error_class)

    # a run's error event, over SSE
    (event,) = stream_errors(server, f"get_history.{code}")
    assert event["code"] == code
    assert event["retryable"] is error_class.retryable

    # an HTTP error body
    answer = httpx.get(f"{server}/v1/sessions/get_session.{code}/history", timeout=30)
    assert answer.status_code == status
    body = answer.json()["error"]
    assert (body["code"], body["retryable"]) == (code, event["retryable"])

    # the CLI: an error a command meets
    met = run_cli({**env, "FAIL_LIST_SESSIONS": code}, "history")
    assert met.returncode == exit_code
    assert met.stderr == f"chat-shell: scripted {code} from list_sessions\n"

    # the CLI: a run that failed with it
    failed = run_cli(env, "query", "--json", "--session", f"get_history.{code}", "hi")
    assert failed.returncode == exit_code
    output = json.loads(failed.stdout)
    assert (output["status"], output["error"]["code"]) == ("failed", code)
    assert output["error"]["retryable"] is event["retryable"]
    (line,) = failed.stderr.splitlines()
    assert line.startswith(f"chat-shell: scripted {code} from get_history")
