"""Checks the SQLite tests share: the file is sound, and its search index is exactly what the
messages say it should be. They read the file with a connection of their own."""

from __future__ import annotations

import collections
import contextlib
import re
import sqlite3
from pathlib import Path


def query(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, args).fetchall()


def words(text: str) -> list[str]:
    """How the index splits ASCII text into terms (``unicode61``: letters and digits, folded)."""
    return re.findall(r"[a-z0-9]+", text.lower())


def assert_search_index_sound(db: Path) -> None:
    """``PRAGMA integrity_check`` and FTS5's ``integrity-check`` pass; the index holds exactly
    the messages with content at or below its mark, each with exactly its own words; and the
    mark is not above the newest message (so a new message can never count as indexed)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
        mark, newest = conn.execute(
            "SELECT indexed_upto, coalesce((SELECT max(id) FROM messages), 0)"
            " FROM messages_fts_state"
        ).fetchone()
        assert mark <= newest, f"index mark {mark} is above the newest message {newest}"
        expected = dict(
            conn.execute(
                "SELECT id, content FROM messages WHERE content IS NOT NULL AND id <= ?", (mark,)
            ).fetchall()
        )
        indexed = [row[0] for row in conn.execute("SELECT id FROM messages_fts_docsize")]
        assert sorted(indexed) == sorted(expected)
        conn.execute(
            "CREATE VIRTUAL TABLE temp.terms USING fts5vocab(main, messages_fts, 'instance')"
        )
        terms: dict[int, list[str]] = collections.defaultdict(list)
        for term, doc in conn.execute("SELECT term, doc FROM temp.terms"):
            terms[doc].append(term)
    for message_id, content in expected.items():
        assert sorted(terms.pop(message_id, [])) == sorted(words(content)), message_id
    assert not terms, f"index entries of no indexed message: {sorted(terms)}"
