"""Every Python example in README.md and docs/ runs as written (against the scripted server)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from chat_shell.testing import ScriptedModelServer

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Examples that import another distribution run only where it is installed.
OPTIONAL = {
    "chat_shell_sqlite": "chat-shell-sqlite",
    "chat_shell_postgres": "chat-shell-postgres",
    "chat_shell_cli": "chat-shell-cli",
    "chat_shell_http": "chat-shell-http",
    "chat_shell_mcp": "chat-shell-mcp",
}
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def examples() -> Iterator[object]:
    for document in DOCUMENTS:
        text = document.read_text()
        for number, match in enumerate(BLOCK.finditer(text), start=1):
            line = text[: match.start()].count("\n") + 1
            yield pytest.param(match.group(1), id=f"{document.name}:{line}#{number}")


def test_there_are_examples() -> None:
    assert len(list(examples())) >= 6


@pytest.mark.parametrize("code", list(examples()))
def test_example_runs(code: str, tmp_path: Path) -> None:
    for module, distribution in OPTIONAL.items():
        if re.search(rf"\b{module}\b|storage=\"{module.split('_')[-1]}\"", code) and (
            importlib.util.find_spec(module) is None
        ):
            pytest.skip(f"needs {distribution}")
    with ScriptedModelServer() as server:
        env = {
            **os.environ,
            "OPENAI_BASE_URL": server.url,
            "OPENAI_API_KEY": "sk-docs-example",
            "CHAT_SHELL_HOME": str(tmp_path / "home"),
            # commands installed beside this Python (an MCP server from PyPI) are on the PATH
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        }
        # examples of the postgres backend run against the tests' server when there is one
        if "chat_shell_postgres" in code and os.environ.get("CHAT_SHELL_TEST_POSTGRES_URL"):
            env["CHAT_SHELL_STORAGE_URL"] = os.environ["CHAT_SHELL_TEST_POSTGRES_URL"]
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr


def test_every_test_the_security_page_names_exists() -> None:
    """docs/security.md names the test behind each defence (``tests/…py::name``, or ``::name``
    for another test of the file named last): each must exist, so the page cannot drift."""
    text = (ROOT / "docs" / "security.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`", text)
    current: Path | None = None
    checked = 0
    for path, name in named:
        if path:
            current = ROOT / path
            assert current.is_file(), f"docs/security.md names a missing file {path}"
        if name:
            assert current is not None, f"::{name} follows no file"
            pattern = rf"^(async )?def {name}\("
            assert re.search(pattern, current.read_text(), re.MULTILINE), f"no {name} in {current}"
            checked += 1
    assert checked >= 30
