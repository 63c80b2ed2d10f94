"""The README's set-up commands work as written on a checkout where the Makefile installed
everything (uv bootstrapped or not): its make targets exist, `make quickstart` and the commands
after activating `.venv` run, and `make run` stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from chat_shell.testing import ScriptedModelServer

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BASH_BLOCKS = re.findall(r"^```bash\n(.*?)^```", README, re.DOTALL | re.MULTILINE)


def commands_of(block: str) -> list[str]:
    """A bash block's command lines, without their trailing comments."""
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


SETUP_COMMANDS = [
    command for block in BASH_BLOCKS if "make " in block for command in commands_of(block)
]


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    """A fresh shell on the checkout: no model credentials, no virtualenv active, no chat-shell
    on PATH, not inside another make."""
    skipped = ("CHAT_SHELL_", "OPENAI_", "ANTHROPIC_", "GEMINI_", "MAKE", "MFLAGS", "VIRTUAL_ENV")
    env = {key: value for key, value in os.environ.items() if not key.startswith(skipped)}
    path = os.environ.get("PATH", "").split(os.pathsep)
    env["PATH"] = os.pathsep.join(p for p in path if not Path(p, "chat-shell").exists())
    env["CHAT_SHELL_HOME"] = str(tmp_path / "home")
    env.pop("PYTHONPATH", None)
    return env


def bash(
    script: str, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_readme_shows_the_set_up_commands() -> None:
    assert "make run" in SETUP_COMMANDS
    assert "make test" in SETUP_COMMANDS
    assert "make quickstart" in SETUP_COMMANDS
    assert "source .venv/bin/activate" in SETUP_COMMANDS
    assert "uv run" not in README  # uv may be only in .uv-bootstrap/, not on PATH


def test_every_make_target_the_readme_names_exists(user_env: dict[str, str]) -> None:
    targets = set(re.findall(r"\bmake ([a-z][a-z-]*)", README))
    listed = re.search(r"`make help` lists the other targets \(([^)]*)\)", README)
    assert listed is not None
    targets |= set(re.findall(r"`([a-z-]+)`", listed.group(1)))
    assert {"run", "test", "quickstart", "help", "install", "wheels"} <= targets
    helped = bash("make help", user_env)
    assert helped.returncode == 0, helped.stderr
    for target in sorted(targets):
        assert f"make {target} " in helped.stdout, f"`make help` does not list {target}"
        dry = bash(f"make -n {target}", user_env)
        assert dry.returncode == 0, (target, dry.stderr)


def test_make_quickstart_runs_without_credentials(user_env: dict[str, str]) -> None:
    result = bash("make quickstart", user_env)
    assert result.returncode == 0, result.stderr
    assert "56088" in result.stdout  # the demo model called the example's tool
    assert "demo model" in result.stderr


def test_make_quickstart_uses_the_configured_model(user_env: dict[str, str]) -> None:
    with ScriptedModelServer() as server:
        env = {**user_env, "OPENAI_BASE_URL": server.url}
        result = bash('make quickstart ARGS="hello from make"', env)
        assert result.returncode == 0, result.stderr
        assert "echo: hello from make" in result.stdout
        assert server.requests[0]["model"] == "gpt-4o-mini"
    assert "demo model" not in result.stderr


def test_the_commands_after_activating_the_venv(user_env: dict[str, str]) -> None:
    assert shutil.which("chat-shell", path=user_env["PATH"]) is None
    (block,) = [block for block in BASH_BLOCKS if "source .venv/bin/activate" in block]
    result = bash("\n".join(commands_of(block)), user_env)
    assert result.returncode == 0, result.stderr
    assert "openai/gpt-4o-mini" in result.stdout  # chat-shell models
    assert "echo: What is 7 * 191?" in result.stdout  # the quickstart, on the demo model


def _descendants(pid: int) -> list[int]:
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found += [int(child), *_descendants(int(child))]
    return found


@pytest.fixture
def make_run(user_env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    with ScriptedModelServer() as upstream:
        port = _free_port()
        process = subprocess.Popen(
            ["make", "run", f"ARGS=--port {port} --storage memory --log-level warning"],
            cwd=ROOT,
            env={**user_env, "OPENAI_BASE_URL": upstream.url},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, as in a terminal
        )
        try:
            deadline = time.monotonic() + 300
            while True:
                assert process.poll() is None, process.communicate()
                try:
                    health = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1)
                    if health.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "make run did not start the server"
                time.sleep(0.1)
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate(timeout=10)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sigterm_to_the_server_ends_make_run_cleanly(make_run: subprocess.Popen[str]) -> None:
    *_, server = _descendants(make_run.pid)  # make → uv → chat-shell serve
    os.kill(server, signal.SIGTERM)
    _, stderr = make_run.communicate(timeout=60)
    assert make_run.returncode == 0, stderr
    assert "make: ***" not in stderr
    assert "Traceback" not in stderr


def test_sigterm_to_the_terminal_ends_make_run_cleanly(make_run: subprocess.Popen[str]) -> None:
    children = _descendants(make_run.pid)
    os.killpg(make_run.pid, signal.SIGTERM)  # what closing a terminal or `kill -TERM -PGID` does
    _, stderr = make_run.communicate(timeout=60)
    assert "make: ***" not in stderr
    assert "Traceback" not in stderr
    for child in children:  # nothing is left running
        assert not Path(f"/proc/{child}").exists() or _is_zombie(child)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except FileNotFoundError:
        return True
