"""mypy sees the tests as pytest imports them: every test folder is a package base in
[tool.mypy] mypy_path (see CONTRIBUTING.md, "Type checking")."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_folder_is_in_mypy_path() -> None:
    mypy = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    folders = {path.parent.relative_to(ROOT).as_posix() for path in (ROOT / "tests").rglob("*.py")}
    missing = sorted(folders - set(mypy["mypy_path"]))
    assert missing == [], f"add {missing} to [tool.mypy] mypy_path in pyproject.toml"
    assert "tests" in mypy["files"]
