"""``chat-shell history`` on a history file the user may not write: listing, showing, searching
and exporting work; writing commands fail at once with a line that names the file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli_support import SCRIPT, Run, without_permission_override


def _session(cli: Run, message: str) -> str:
    result = cli("query", "--json", message)
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["session_id"])


@pytest.mark.parametrize("folder_writable", [True, False], ids=["file-0400", "folder-0500-too"])
def test_history_reads_a_write_protected_database(
    cli: Run, env: dict[str, str], home: Path, folder_writable: bool
) -> None:
    purple = _session(cli, "the purple elephant")
    assert json.loads(cli("history", "search", "purple", "--json").stdout)  # indexed
    other = _session(cli, "a purple sky")  # its messages wait for the search index
    db = home / "history.db"
    assert sorted(path.name for path in home.glob("history.db*")) == ["history.db"]
    db.chmod(0o400)
    if not folder_writable:
        home.chmod(0o500)
    before = db.read_bytes()

    def as_user(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
            preexec_fn=without_permission_override,
        )

    try:
        listing = as_user("history", "--json")
        assert listing.returncode == 0, listing.stderr
        assert [info["id"] for info in json.loads(listing.stdout)] == [other, purple]
        shown = as_user("history", "show", purple[:8], "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["messages"][0]["content"] == "the purple elephant"
        found = as_user("history", "search", "purple", "--json")
        assert found.returncode == 0, found.stderr
        assert {hit["session_id"] for hit in json.loads(found.stdout)} == {purple, other}
        exported = as_user("history", "export")
        assert exported.returncode == 0, exported.stderr
        assert exported.stdout.count('"type": "session"') == 2

        for write in (["history", "delete", purple, "--yes"], ["query", "one more"]):
            refused = as_user(*write)
            assert refused.returncode == 1, (write, refused.stdout)
            assert refused.stderr.startswith(f"chat-shell: {db} is read-only ("), refused.stderr
            assert "make it writable" in refused.stderr
        assert db.read_bytes() == before
    finally:
        home.chmod(0o700)
        db.chmod(0o600)
    assert len(json.loads(cli("history", "--json").stdout)) == 2
