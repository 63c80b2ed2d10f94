"""`chat-shell serve` on PostgreSQL, as real processes: one clear line when the database cannot
be reached, `--workers N` refused for a storage one process holds, and N workers sharing one
port and one history that every worker serves, stopped together by SIGTERM."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from chat_shell.testing import ScriptedModelServer
from serve_support import Serve, free_port, postgres_env, run_cli, sse_numbered, start_run, user

pytest.importorskip("chat_shell_cli")
pytest.importorskip("chat_shell_http")
pytest.importorskip("chat_shell_postgres")


@pytest.fixture
def upstream() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as server:
        yield server


def test_an_unreachable_database_is_one_line_and_exit_1(
    tmp_path: Path, upstream: ScriptedModelServer
) -> None:
    url = f"postgresql://chat:hunter2secret@127.0.0.1:{free_port()}/chat"
    env = postgres_env(tmp_path / "home", upstream.url, url)
    for command in (["serve", "--port", str(free_port())], ["history"], ["query", "hello"]):
        result = run_cli(env, *command, timeout=60)
        assert result.returncode == 1, (command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (command, result.stderr)
        assert "cannot connect to PostgreSQL at 127.0.0.1:" in lines[0]
        assert "hunter2secret" not in result.stderr + result.stdout


def test_workers_are_refused_for_a_storage_one_process_holds(
    tmp_path: Path, upstream: ScriptedModelServer
) -> None:
    env = postgres_env(tmp_path / "home", upstream.url, "postgresql://unused@127.0.0.1/x")
    result = run_cli(
        env,
        "serve",
        "--port",
        str(free_port()),
        "--storage",
        "memory",
        "--workers",
        "2",
        timeout=60,
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
    env = postgres_env(tmp_path / "home", upstream.url, postgres_url)
    with Serve(env, "--workers", "2") as server:
        process, url = server.process, server.url
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


# -- two instances on one database ---------------------------------------------------------------


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
    env = postgres_env(tmp_path / "home", paced.url, postgres_url, "run_lease_seconds = 3\n")
    with Serve(env) as a, Serve(env) as b:
        url_a, url_b = a.url, b.url
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
                    for count, (seq, _event) in enumerate(sse_numbered(response.iter_lines())):
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
            for _ in range(1200):  # until A has flushed some of the answer to the database
                if client.get(f"{url_b}/v1/response/{lost}").json()["content"]:
                    break
                time.sleep(0.05)
            a.kill()
            for _ in range(1200):
                info = client.get(f"{url_b}/v1/response/{lost}").json()
                if info["status"] not in ("queued", "running"):
                    break
                time.sleep(0.05)
            assert info["status"] == "interrupted"
            # the sweeper ends the run, then stores its partial answer
            for _ in range(1200):
                history = client.get(f"{url_b}/v1/sessions/crash/history").json()["messages"]
                if len(history) > 1:
                    break
                time.sleep(0.05)
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


def test_history_moves_from_sqlite_to_postgres(
    tmp_path: Path, upstream: ScriptedModelServer, postgres_url: str
) -> None:
    """docs/deploy.md's move: `history export --storage sqlite | history import --storage
    postgres -`, and the session reads the same on the other side."""
    env = postgres_env(tmp_path / "home", upstream.url, postgres_url)

    def cli(*args: str, stdin: str = "") -> str:
        result = run_cli(env, *args, input=stdin, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    cli("query", "--storage", "sqlite", "--session", "moved", "hello from sqlite")
    exported = cli("history", "export", "--storage", "sqlite")
    cli("history", "import", "--storage", "postgres", "-", stdin=exported)
    cli("history", "import", "--storage", "postgres", "-", stdin=exported)  # again: skipped
    assert cli("history", "export", "--storage", "postgres") == exported
