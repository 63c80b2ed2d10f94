"""`chat-shell serve` on PostgreSQL, as real processes: one clear line when the database cannot
be reached, `--workers N` refused for a storage one process holds, and N workers sharing one
port and one history that every worker serves, stopped together by SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from chat_shell.testing import ScriptedModelServer

pytest.importorskip("chat_shell_cli")
pytest.importorskip("chat_shell_http")
pytest.importorskip("chat_shell_postgres")

SCRIPT = Path(sys.executable).with_name("chat-shell")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def upstream() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as server:
        yield server


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def environment(
    home: Path, upstream: ScriptedModelServer, url: str, extra: str = ""
) -> dict[str, str]:
    home.mkdir(mode=0o700, exist_ok=True)
    (home / "config.toml").write_text(
        f'model = "openai/scripted"\nretries = 0\nstorage = "postgres"\n{extra}'
        f'[models."openai/scripted"]\napi_base = "{upstream.url}"\n'
    )
    return {
        **os.environ,
        "CHAT_SHELL_HOME": str(home),
        "CHAT_SHELL_STORAGE_URL": url,
        "NO_COLOR": "1",
    }


def serve(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    process = subprocess.Popen(
        [str(SCRIPT), "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise AssertionError(f"chat-shell serve exited: {process.stderr.read()}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("chat-shell serve did not start")
        time.sleep(0.1)


def test_an_unreachable_database_is_one_line_and_exit_1(
    tmp_path: Path, upstream: ScriptedModelServer
) -> None:
    url = f"postgresql://chat:hunter2secret@127.0.0.1:{free_port()}/chat"
    env = environment(tmp_path / "home", upstream, url)
    for command in (["serve", "--port", str(free_port())], ["history"], ["query", "hello"]):
        result = subprocess.run(
            [str(SCRIPT), *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1, (command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (command, result.stderr)
        assert "cannot connect to PostgreSQL at 127.0.0.1:" in lines[0]
        assert "hunter2secret" not in result.stderr + result.stdout


def test_workers_are_refused_for_a_storage_one_process_holds(
    tmp_path: Path, upstream: ScriptedModelServer
) -> None:
    env = environment(tmp_path / "home", upstream, "postgresql://unused@127.0.0.1/x")
    result = subprocess.run(
        [str(SCRIPT), "serve", "--port", str(free_port()), "--storage", "memory", "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "chat-shell serve: --workers 2 needs history and runs several processes share (storage"
        " sqlite or postgres); storage memory lives in one process: choose another with"
        " --storage, or run one worker"
    ]


def test_two_workers_share_the_port_and_the_history(
    tmp_path: Path, upstream: ScriptedModelServer, postgres_url: str
) -> None:
    env = environment(tmp_path / "home", upstream, postgres_url)
    process, url = serve(env, "--workers", "2")
    try:
        parent = psutil.Process(process.pid)
        workers = parent.children(recursive=True)
        assert len([w for w in workers if "spawn_main" in " ".join(w.cmdline())]) == 2
        with httpx.Client(base_url=url, timeout=30) as client:
            for n in range(6):  # new connections: the kernel spreads them over both workers
                answer = client.post(
                    "/v1/response",
                    json={
                        "messages": user(f"question {n}"),
                        "session_id": "shared",
                        "stream": False,
                    },
                    headers={"Connection": "close"},
                )
                assert answer.status_code == 200, answer.text
                assert answer.json()["status"] == "completed"
            for _ in range(6):
                history = client.get("/v1/sessions/shared/history", headers={"Connection": "close"})
                users = [m["content"] for m in history.json()["messages"] if m["role"] == "user"]
                assert users == [f"question {n}" for n in range(6)]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        # the workers (and multiprocessing's resource tracker) end with the parent
        _gone, alive = psutil.wait_procs(workers, timeout=30)
        assert alive == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()  # type: ignore[union-attr]


# -- two instances on one database ---------------------------------------------------------------


def frames(response: httpx.Response) -> Iterator[tuple[int, dict[str, object]]]:
    """(seq, event) of each SSE frame of ``response``."""
    import json

    seq: int | None = None
    for line in response.iter_lines():
        if line.startswith("id:"):
            seq = int(line[3:].strip())
        elif line.startswith("data:") and seq is not None:
            yield seq, json.loads(line[5:])
            seq = None


def start_run(url: str, session: str) -> str:
    """A streamed run on ``session``, left running (the stream is closed at its first event)."""
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST",
            f"{url}/v1/response",
            json={"messages": user("count slowly"), "session_id": session},
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        run_id = response.headers["X-Subtask-Id"]
        next(frames(response))
    return run_id


@pytest.fixture
def paced() -> Iterator[ScriptedModelServer]:
    from chat_shell.testing import Reply

    def responder(request: dict[str, object]) -> Reply:
        return Reply.tokens(600, delay=0.02)  # a run of about 12 s

    with ScriptedModelServer(responder=responder) as server:
        yield server


def test_two_instances_share_runs(
    tmp_path: Path, paced: ScriptedModelServer, postgres_url: str
) -> None:
    env = environment(tmp_path / "home", paced, postgres_url, "run_lease_seconds = 3\n")
    a, url_a = serve(env)
    b, url_b = serve(env)
    try:
        with httpx.Client(timeout=60) as client:
            run_id = start_run(url_a, "shared")
            status = client.get(f"{url_b}/v1/response/{run_id}").json()
            # in progress (B sees the holder's last flush: at most 50 ms old)
            assert status["status"] in ("queued", "running")
            # 409 across instances: the session is A's until its run ends
            busy = client.post(
                f"{url_b}/v1/response",
                json={"messages": user("me too"), "session_id": "shared", "stream": False},
            )
            assert busy.status_code == 409
            assert busy.json()["error"]["code"] == "session_busy"
            # 100 resumes through B: each continues exactly where it said
            seen: list[int] = []
            for _ in range(100):
                after = seen[-1] if seen else -1
                with client.stream(
                    "GET",
                    f"{url_b}/v1/response/{run_id}",
                    headers={"Accept": "text/event-stream", "Last-Event-ID": str(after)},
                ) as response:
                    for count, (seq, _event) in enumerate(frames(response)):
                        seen.append(seq)
                        if count == 1:
                            break
            assert seen == list(range(200))
            # cancel through B: A's run stops, and B tells
            cancelled = client.delete(f"{url_b}/v1/response/{run_id}")
            assert cancelled.status_code == 200, cancelled.text
            for _ in range(600):
                final = client.get(f"{url_b}/v1/response/{run_id}").json()
                if final["status"] not in ("queued", "running"):
                    break
                time.sleep(0.05)
            assert final["status"] == "cancelled"

            # kill -9 of A mid-run: B marks the run interrupted, the partial answer kept
            lost = start_run(url_a, "crash")
            time.sleep(1)  # let A flush some of the answer to the database
            a.kill()
            a.wait()
            for _ in range(1200):
                info = client.get(f"{url_b}/v1/response/{lost}").json()
                if info["status"] not in ("queued", "running"):
                    break
                time.sleep(0.05)
            assert info["status"] == "interrupted"
            history = client.get(f"{url_b}/v1/sessions/crash/history").json()["messages"]
            assert [m["role"] for m in history] == ["user", "assistant"]
            assert history[-1]["metadata"]["status"] == "interrupted"
            assert history[-1]["content"]
            assert info["content"].startswith(history[-1]["content"][:10])
            # and the session is free again, from B
            again = client.post(
                f"{url_b}/v1/response",
                json={"messages": user("after the crash"), "session_id": "crash", "stream": False},
            )
            assert again.status_code == 200, again.text
    finally:
        for process in (a, b):
            if process.poll() is None:
                process.terminate()
                process.wait(30)
            process.stderr.close()  # type: ignore[union-attr]


def test_history_moves_from_sqlite_to_postgres(
    tmp_path: Path, upstream: ScriptedModelServer, postgres_url: str
) -> None:
    """docs/deploy.md's move: `history export --storage sqlite | history import --storage
    postgres -`, and the session reads the same on the other side."""
    env = environment(tmp_path / "home", upstream, postgres_url)

    def cli(*args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [str(SCRIPT), *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    cli("query", "--storage", "sqlite", "--session", "moved", "hello from sqlite")
    exported = cli("history", "export", "--storage", "sqlite")
    cli("history", "import", "--storage", "postgres", "-", stdin=exported)
    cli("history", "import", "--storage", "postgres", "-", stdin=exported)  # again: skipped
    assert cli("history", "export", "--storage", "postgres") == exported
