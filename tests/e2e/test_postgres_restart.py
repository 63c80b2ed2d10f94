"""PostgreSQL restarted mid-run, as real processes: `chat-shell serve` on a PostgreSQL server of
this test's own (tests/postgres/server.sh, so no other test is disturbed), the server stopped
and started again while a run streams. The run ends completed or failed, never stuck; its events
replay from seq 0 without gap or duplicate; the pool reconnects and a new run on the same session
works."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from chat_shell.testing import Reply, ScriptedModelServer
from serve_support import Serve, postgres_env, sse_numbered, start_run, user

pytest.importorskip("chat_shell_cli")
pytest.importorskip("chat_shell_http")
pytest.importorskip("chat_shell_postgres")

SERVER_SH = Path(__file__).parents[1] / "postgres" / "server.sh"
TOKENS = 300


@pytest.fixture
def own_server(server_url: str) -> Iterator[tuple[str, Path]]:
    """(URL, folder) of a PostgreSQL server of this test's own (``server_url`` only says that
    PostgreSQL tests are to run here)."""
    if shutil.which("bash") is None:
        pytest.fail("tests/postgres/server.sh needs bash")
    folder = Path(tempfile.mkdtemp(prefix="chat-shell-pg-restart."))
    started = subprocess.run(
        ["bash", str(SERVER_SH), "start", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    try:
        yield started.stdout.strip(), folder
    finally:
        subprocess.run(["bash", str(SERVER_SH), "stop", str(folder)], timeout=120, check=False)


@pytest.fixture
def paced() -> Iterator[ScriptedModelServer]:
    def responder(request: dict[str, object]) -> Reply:
        return Reply.tokens(TOKENS, delay=0.02)  # a run of about 6 s

    with ScriptedModelServer(responder=responder) as server:
        yield server


def wait_for_end(client: httpx.Client, url: str, run_id: str) -> dict[str, object]:
    """The run's final status, asked until it is no longer queued or running (a request may
    fail while the database is down: asked again)."""
    for _ in range(1200):
        try:
            answer = client.get(f"{url}/v1/response/{run_id}")
        except httpx.HTTPError:
            answer = None
        if answer is not None and answer.status_code == 200:
            info: dict[str, object] = answer.json()
            if info["status"] not in ("queued", "running"):
                return info
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not end")


def replay(client: httpx.Client, url: str, run_id: str) -> list[tuple[int, dict[str, object]]]:
    """Every event of the run, replayed from seq 0."""
    with client.stream(
        "GET",
        f"{url}/v1/response/{run_id}",
        headers={"Accept": "text/event-stream", "Last-Event-ID": "-1"},
    ) as response:
        assert response.status_code == 200, response.read()
        return list(sse_numbered(response.iter_lines()))


def test_a_database_restart_mid_run(
    tmp_path: Path, paced: ScriptedModelServer, own_server: tuple[str, Path]
) -> None:
    url, folder = own_server
    env = postgres_env(tmp_path / "home", paced.url, url)
    with Serve(env) as server:
        process, base = server.process, server.url
        with httpx.Client(timeout=60) as client:
            run_id = start_run(base, "restarted")
            time.sleep(1)  # some of the answer is written before the database goes away
            restarted = subprocess.run(
                ["bash", str(SERVER_SH), "restart", str(folder), "1"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert restarted.returncode == 0, restarted.stderr
            during = client.get(f"{base}/v1/response/{run_id}").json()
            assert during["status"] == "running", "the run ended before the restart"
            info = wait_for_end(client, base, run_id)
            assert info["status"] in ("completed", "failed"), info

            # replayed from the database by a second instance: every event once, in order
            with Serve(env) as other:
                events = replay(client, other.url, run_id)
            seqs = [seq for seq, _event in events]
            assert seqs == list(range(len(seqs))), seqs
            assert seqs[-1] == info["last_seq"]
            last = events[-1][1]
            assert last["event_type"] == "complete"
            assert last["data"]["status"] == info["status"]  # type: ignore[index]
            if info["status"] == "completed":
                expected = "".join(f"t{n} " for n in range(TOKENS))
                assert info["content"] == expected
                assert last["data"]["content"] == expected  # type: ignore[index]

            # the pool reconnected: a new run on the same session works, history holds both
            again = client.post(
                f"{base}/v1/response",
                json={
                    "messages": user("after the restart"),
                    "session_id": "restarted",
                    "stream": False,
                },
            )
            assert again.status_code == 200, again.text
            assert again.json()["status"] == "completed"
            history = client.get(f"{base}/v1/sessions/restarted/history").json()["messages"]
            assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
        assert process.poll() is None, "chat-shell serve died with the database"
